"""Container tier: the pinned versions of a generated project, with the real engine.

* The `mlflow` image holds exactly the dependency group `mlflow-server` of uv.lock (MLflow at
  the version of cookiecutter.json `_versions.mlflow`, the clients' version), consistent
  (`uv pip check`).
* `make pin-images` against a real registry (Debian's docker-registry on 127.0.0.1) holding the
  stand-ins, pushed with `docker push`: every reference gets the digest the push produced and
  the registry serves, a second run changes nothing, and the pinned files still pass hadolint,
  the Engine 20.10 checks and `docker compose config` (the kit's check-static).
"""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import pytest

from tests.containers.stack import DOCKER, Stack, build, docker_env, run_in_image, sh
from tests.registry import base_image_slots, local_registry, repository, served_digest
from tests.support import cookiecutter_json, run
from tests.upkeep.helpers import tool, tool_env

pytestmark = [pytest.mark.containers, pytest.mark.xdist_group("containers")]


def uv_in_image(image: str, *args: str) -> str:
    """The host's uv, mounted read-only, run against the image's /opt/venv (the image has none);
    its stdout and stderr."""
    uv = Path(tool("uv")).resolve()
    done = sh(
        DOCKER, "run", "--rm", "--entrypoint", "/usr/local/bin/uv", "-e", "UV_NO_CACHE=1",
        "-v", f"{uv}:/usr/local/bin/uv:ro", image, *args, "--python", "/opt/venv/bin/python",
        timeout=300,
    )  # fmt: skip
    return done.stdout + done.stderr


def normalized(requirement: str) -> str:
    return requirement.strip().lower().replace("_", "-")


def test_mlflow_image_is_the_locked_mlflow_server_group(stacks: dict[str, Stack]) -> None:
    stack = stacks["default"]
    assert (stack.path / "uv.lock").is_file(), "the default stack builds from its lock"
    build(stack, "mlflow")
    image = stack.image("mlflow")
    version = cookiecutter_json()["_versions"]["mlflow"]
    installed = run_in_image(
        image, "python", "-c", "import importlib.metadata as m; print(m.version('mlflow'))"
    ).strip()
    assert installed == version
    locked = run(
        tool("uv"), "export", "--frozen", "--only-group", "mlflow-server", "--no-emit-project",
        "--no-hashes", "--no-header", "--no-annotate", cwd=stack.path, env=tool_env(),
    ).stdout  # fmt: skip
    requirements = [line for line in locked.splitlines() if "==" in line]
    everywhere = {normalized(line) for line in requirements if ";" not in line}
    anywhere = {normalized(line.split(";")[0]) for line in requirements}
    frozen = uv_in_image(image, "pip", "freeze").splitlines()
    installed_set = {normalized(line) for line in frozen if "==" in line}
    assert f"mlflow=={version}" in installed_set
    assert everywhere - installed_set == set(), "locked packages missing from the image"
    assert installed_set - anywhere == set(), "packages in the image that uv.lock does not hold"
    assert "All installed packages are compatible" in uv_in_image(image, "pip", "check")


def test_pin_images_writes_the_digests_docker_push_produced(
    stacks: dict[str, Stack], kit: Path, tmp_path: Path
) -> None:
    stack = stacks["default"]
    project = tmp_path / stack.path.name
    shutil.copytree(stack.path, project, ignore=shutil.ignore_patterns(".git", ".venv"))
    slots = base_image_slots(project)
    refs = list(dict.fromkeys(ref for _file, ref in slots))
    pushed: dict[str, str] = {}
    with local_registry(tmp_path / "registry") as base:
        host = base.removeprefix("http://")
        try:
            for ref in refs:
                target = "{}/{}:{}".format(host, *repository(ref))
                sh(DOCKER, "tag", ref, target)
                sh(DOCKER, "push", target, timeout=600)
                (digest,) = json.loads(
                    sh(
                        DOCKER, "image", "inspect", "--format", "{{json .RepoDigests}}", target
                    ).stdout
                )
                pushed[ref] = digest.rsplit("@", 1)[1]
            env = {"PIN_IMAGES_REGISTRY": base}
            sh("python3", "docker/pin_images.py", cwd=project, env=docker_env(env))
            for (file, before), (_, after) in zip(slots, base_image_slots(project), strict=True):
                assert after == f"{before}@{pushed[before]}", (file, before, after)
                assert pushed[before] == served_digest(base, *repository(before))
            first = {p: p.read_bytes() for p in project.rglob("*") if p.is_file()}
            again = sh("python3", "docker/pin_images.py", cwd=project, env=docker_env(env))
            assert "pinned " not in again.stdout
            assert {p: p.read_bytes() for p in project.rglob("*") if p.is_file()} == first
        finally:
            for ref in pushed:
                sh(DOCKER, "rmi", "{}/{}:{}".format(host, *repository(ref)), check=False)
    assert re.search(
        r"^ARG CPU_BASE_IMAGE=\S+@sha256:", (project / "docker/Dockerfile").read_text(), re.M
    )
    sh(str(kit / "check-static"), str(project), env=stack.env, timeout=600)
