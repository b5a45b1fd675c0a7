"""The rendered Kubernetes pod specs of the dev overlay run: each container started on Docker
with exactly its rendered image, command, args, environment, user, read-only root filesystem,
dropped capabilities, Secrets as files and emptyDirs (tests/containers/kube_driver.py), on one
network where the Service names resolve. Postgres, MLflow (with its artifacts destination
overridden by the rendered args), the schema Jobs, Redis and serving come up and their rendered
probes answer as the manifests expect.

Not run here: training through the rendered Job. The tracking server stores artifacts in the
object store (MLFLOW_ARTIFACTS_DESTINATION), and the mlflow image has no S3 client yet
(docs/kubernetes.md, step 1), so a model cannot be registered through it.
"""

from __future__ import annotations

import secrets
import subprocess
import time
from collections.abc import Callable

import pytest
import yaml

from tests.containers.kube_driver import Cluster
from tests.containers.stack import DOCKER, Stack, sh

pytestmark = [pytest.mark.containers, pytest.mark.xdist_group("containers")]

SECRET_FILES = ("postgres_password", "admin_token", "aws_access_key_id", "aws_secret_access_key")


def _image_uid(image: str, user: str) -> int:
    """The uid of `user` in a local image (stand-ins are Debian builds: their service users
    have Debian's uids, not those of the official Alpine images the manifests run as)."""
    done = sh(DOCKER, "run", "--rm", "--entrypoint", "id", image, "-u", user)
    return int(done.stdout.strip())


def test_rendered_dev_pods_start_and_answer_their_probes(
    built: Callable[[str], Stack],
) -> None:
    stack = built("default")
    folder = stack.path / "secrets"
    folder.mkdir(exist_ok=True)
    for name in SECRET_FILES:
        if not (folder / name).exists():
            (folder / name).write_text(secrets.token_urlsafe(24))
    rendered = subprocess.run(
        ["kubectl", "kustomize", "--load-restrictor", "LoadRestrictionsNone",
         str(stack.path / "deploy" / "k8s" / "overlays" / "dev")],
        capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    docs = [d for d in yaml.safe_load_all(rendered) if d]
    # The overlay's release tag on the images Compose built: what `kind load` or a push does.
    for doc in docs:
        if doc["kind"] in ("Deployment", "Job", "StatefulSet"):
            image = doc["spec"]["template"]["spec"]["containers"][0]["image"]
            repository = image.rsplit(":", 1)[0]
            if repository.startswith(f"{stack.path.name}-"):
                sh(DOCKER, "tag", f"{repository}:{stack.env['IMAGE_TAG']}", image)
    db_image = next(d for d in docs if d["kind"] == "StatefulSet")["spec"]["template"]["spec"][
        "containers"
    ][0]["image"]
    overrides = {"db": _image_uid(db_image, "postgres")}
    if stack.path.joinpath("src", stack.package, "serving", "cache.py").exists():
        overrides["redis"] = _image_uid("redis:7.4-alpine", "redis")

    cluster = Cluster(docs, f"k8s-{stack.name}", uid_overrides=overrides)
    with cluster.running():
        db = cluster.start("StatefulSet", "db", aliases=("db",))
        assert "accepting connections" in db.wait_for("readinessProbe", budget=180)
        mlflow = cluster.start("Deployment", "mlflow", aliases=("mlflow",))
        mlflow.wait_for("startupProbe")
        mlflow.wait_for("readinessProbe")
        # Rerun after the server created the schema: what `make k8s-apply` does on every apply.
        upgrade = cluster.start("Job", "mlflow-db-upgrade")
        assert upgrade.wait_exit(300) == 0, upgrade.logs()
        if any(d["kind"] == "Job" and d["metadata"]["name"] == "migrate" for d in docs):
            migrate = cluster.start("Job", "migrate")
            assert migrate.wait_exit(300) == 0, migrate.logs()
            assert "prediction log table" in migrate.logs() or "Running upgrade" in migrate.logs()
        if "redis" in overrides:
            redis = cluster.start("Deployment", "redis", aliases=("redis",))
            redis.wait_for("readinessProbe")
        serving = cluster.start("Deployment", "serving", aliases=("serving",))
        assert serving.wait_for("startupProbe") == '{"status":"ok"}'
        assert serving.probe("livenessProbe")[0]
        # No champion is registered yet: ready says why, with every dependency up.
        deadline = time.monotonic() + 60
        while "model not loaded yet" in (answer := serving.probe("readinessProbe")[1]):
            assert time.monotonic() < deadline, answer
            time.sleep(1)
        assert answer.startswith("503"), answer
        # MLflow's auth answers 403 for a model that does not exist: the reason says both.
        assert "is not registered (or not readable by MLflow user serving)" in answer, answer
        for dependency in ("redis", "prediction_log"):
            if f'"{dependency}"' in answer:
                assert f'"{dependency}":"ok"' in answer, answer
        # The root filesystem is read-only and the process is the rendered non-root user.
        probe = sh(
            DOCKER, "exec", serving.cname, "sh", "-c", "id -u; touch /app/x 2>/dev/null || echo ro"
        )
        assert probe.stdout.split() == ["10001", "ro"], probe.stdout
