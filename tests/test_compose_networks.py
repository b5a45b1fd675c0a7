"""Egress of the generated Compose stack, read from its files (dev: compose.yaml with
compose.override.yaml; prod: with compose.prod.yaml): only the training containers have a way
out. Serving and MLflow sit on the internal `backend` network and, where a port is published,
on `published`, whose traffic Docker does not masquerade (no route to other hosts).

What is checked is the configuration Docker is given, not packets: the container tier runs the
stack and uses every published port.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
import yaml

from tests.conftest import Baked

NO_MASQUERADE = "com.docker.network.bridge.enable_ip_masquerade"
# Services that must reach hosts outside the machine, and why.
NEEDS_EGRESS = {
    "training": "DVC remotes",
    "training-gpu": "DVC remotes",
    "tuner": "DVC remotes",
}
ANSWERS = {"default": {}, "monitoring": {"monitoring": "prometheus-grafana"}}


def _merged(baked: Baked, *files: str) -> dict[str, dict[str, Any]]:
    """Each service's networks and ports across the Compose files, as Compose merges them."""
    services: dict[str, dict[str, Any]] = {}
    for name in files:
        for service, spec in (yaml.safe_load(baked.read(name))["services"] or {}).items():
            merged = services.setdefault(service, {"networks": set(), "ports": []})
            merged["networks"] |= set(spec.get("networks") or [])
            merged["ports"] += spec.get("ports") or []
    return services


@pytest.mark.parametrize("answers", list(ANSWERS))
def test_only_the_training_containers_have_a_way_out(
    bake_session: Callable[..., Baked], answers: str
) -> None:
    baked = bake_session(**ANSWERS[answers])
    networks = yaml.safe_load(baked.read("compose.yaml"))["networks"]
    closed = {
        name for name, spec in networks.items()
        if (spec or {}).get("internal")
        or (spec or {}).get("driver_opts", {}).get(NO_MASQUERADE) == "false"
    }  # fmt: skip
    assert "backend" in closed and "published" in closed
    for variant in (
        ("compose.yaml", "compose.override.yaml"),
        ("compose.yaml", "compose.prod.yaml"),
    ):
        services = _merged(baked, *variant)
        assert {"serving", "mlflow"} <= set(services)
        for name, spec in services.items():
            if not spec["networks"]:
                continue  # a service the variant only tunes (its networks come from compose.yaml)
            open_ = spec["networks"] - closed
            if name in NEEDS_EGRESS:
                assert open_, f"{variant}: {name} needs a way out ({NEEDS_EGRESS[name]})"
            else:
                assert not open_, f"{variant}: {name} can reach other hosts through {open_}"
            if spec["ports"]:
                # A port is published only from a network that is not internal.
                assert spec["networks"] - {"backend"}, f"{variant}: {name} publishes from backend"
