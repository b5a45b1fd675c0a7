"""`make pin-images` (docker/pin_images.py of a generated project) against a real registry.

The registry is Debian's docker-registry on 127.0.0.1 (tests/registry.py), reached through
the script's PIN_IMAGES_REGISTRY override; each image is uploaded with the Registry HTTP API
a `docker push` uses. The container tier (tests/containers/test_base_image_pins.py) pushes
the stand-in images themselves and lints the pinned files.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.conftest import Baked
from tests.registry import (
    base_image_slots,
    local_registry,
    push_image,
    repository,
    served_digest,
    token_registry,
)
from tests.support import run

PINNED = re.compile(r"^(?P<ref>[^@\s]+)@(?P<digest>sha256:[0-9a-f]{64})$")


@pytest.fixture
def registry(tmp_path: Path) -> Iterator[str]:
    with local_registry(tmp_path / "registry") as base:
        yield base


def pin(project: Path, registry: str, check: bool = True):  # type: ignore[no-untyped-def]
    return run(
        "python3", "docker/pin_images.py", cwd=project, env={"PIN_IMAGES_REGISTRY": registry},
        check=check, timeout=120,
    )  # fmt: skip


def snapshot(project: Path) -> dict[str, bytes]:
    return {
        str(p.relative_to(project)): p.read_bytes()
        for p in sorted(project.rglob("*"))
        if p.is_file() and ".git" not in p.parts
    }


@pytest.fixture
def pinnable(bake: Callable[..., Baked], registry: str) -> tuple[Path, list[tuple[str, str]]]:
    """A project with monitoring (the most images) and every one of its images in the registry,
    each with different content (so a mixed-up digest shows)."""
    project = bake(monitoring="prometheus-grafana").path
    slots = base_image_slots(project)
    for ref in dict.fromkeys(ref for _file, ref in slots):
        push_image(registry, *repository(ref), content=ref)
    return project, slots


def test_every_base_image_is_pinned_to_the_digest_the_registry_serves(
    pinnable: tuple[Path, list[tuple[str, str]]], registry: str
) -> None:
    project, slots = pinnable
    refs = {ref for _file, ref in slots}
    assert {"postgres:17-alpine", "nginx:1.27", "ghcr.io/astral-sh/uv:0.13.9"} <= refs, refs
    assert any(ref.startswith("python:") for ref in refs) and len(refs) >= 7, refs
    pin(project, registry)
    pinned = base_image_slots(project)
    assert [file for file, _ in pinned] == [file for file, _ in slots]
    for (file, before), (_, after) in zip(slots, pinned, strict=True):
        match = PINNED.match(after)
        assert match and match["ref"] == before, (file, before, after)
        assert match["digest"] == served_digest(registry, *repository(before)), (file, before)


def test_a_second_run_changes_nothing(
    pinnable: tuple[Path, list[tuple[str, str]]], registry: str
) -> None:
    project, slots = pinnable
    pin(project, registry)
    first = snapshot(project)
    done = pin(project, registry)
    assert snapshot(project) == first
    assert "pinned " not in done.stdout and done.stdout.count("current ") >= len(slots) // 2


def test_a_moved_tag_is_refreshed_in_every_file(
    pinnable: tuple[Path, list[tuple[str, str]]], registry: str
) -> None:
    project, _slots = pinnable
    pin(project, registry)
    old = served_digest(registry, "library/postgres", "17-alpine")
    new = push_image(registry, "library/postgres", "17-alpine", content="postgres rebuilt")
    assert new != old
    pin(project, registry)
    text = "".join(
        (project / f).read_text(encoding="utf-8")
        for f in ("compose.yaml", "deploy/k8s/overlays/dev/db.yaml")
    )
    assert text.count(f"postgres:17-alpine@{new}") == 2 and old not in text


def test_an_unknown_tag_fails_naming_it_and_changes_nothing(
    bake: Callable[..., Baked], registry: str
) -> None:
    project = bake().path
    refs = list(dict.fromkeys(ref for _file, ref in base_image_slots(project)))
    for ref in refs[1:]:
        push_image(registry, *repository(ref), content=ref)
    before = snapshot(project)
    done = pin(project, registry, check=False)
    assert done.returncode == 1
    repo, tag = repository(refs[0])
    assert f"/v2/{repo}/manifests/{tag}: HTTP 404" in done.stderr, done.stderr
    assert done.stderr.strip().endswith("nothing was changed")
    assert snapshot(project) == before


def test_a_registry_that_wants_a_token_gets_one_anonymously(
    pinnable: tuple[Path, list[tuple[str, str]]], registry: str, tmp_path: Path
) -> None:
    """Docker Hub's flow: 401 + `WWW-Authenticate: Bearer realm,service,scope`, a token from
    the realm without credentials, the request again with it. The same storage as `registry`,
    behind a registry that validates the signed tokens itself."""
    project, slots = pinnable
    with token_registry(tmp_path / "token", storage=tmp_path / "registry" / "storage") as (
        guarded,
        tokens,
    ):
        pin(project, guarded)
    for (file, before), (_, after) in zip(slots, base_image_slots(project), strict=True):
        assert after == f"{before}@{served_digest(registry, *repository(before))}", file
    asked = {(r["service"], r["scope"], r["authorization"]) for r in tokens.requests}
    wanted = {
        ("pin-images-test-registry", f"repository:{repository(ref)[0]}:pull", "")
        for _file, ref in slots
    }
    assert asked == wanted
