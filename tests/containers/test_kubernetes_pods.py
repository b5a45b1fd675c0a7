"""The rendered Kubernetes pod specs of the dev overlay run: each container started on Docker
with exactly its rendered image, command, args, environment, user, read-only root filesystem,
dropped capabilities, Secrets as files and emptyDirs (tests/containers/kube_driver.py), on one
network where the Service names resolve. Postgres, MLflow (with its artifacts destination
overridden by the rendered args), the schema Jobs, Redis and serving come up and their rendered
probes answer as the manifests expect. Then train -> register -> serve -> predict: the dev
overlay's "S3-compatible store given by URL" is moto's server on the host (the address the
pods' network reaches it at replaces the overlay's example endpoint in the settings ConfigMap;
the buckets are created as docs/kubernetes.md asks), the rendered `training` Job
(jobs/dev/train) runs the pipeline and promotes a champion through the MLflow proxy into the
bucket, and serving, started before any model existed, follows the alias by polling and
predicts.

Not run here: the training pod's `dvc pull` from an S3 remote (this project's remote is a local
folder, so the pod writes the example data, as `make pipeline` does; the generated project's
tests/test_object_storage.py pushes and pulls through S3).
"""

from __future__ import annotations

import json
import secrets
import socket
import subprocess
import time
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

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


def _render(path: Path) -> list[dict[str, Any]]:
    rendered = subprocess.run(
        ["kubectl", "kustomize", str(path)],
        capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    return [d for d in yaml.safe_load_all(rendered) if d]


def _example_record(cname: str, package: str) -> dict[str, Any]:
    """A valid request from the project's schema, built inside the serving container."""
    code = (
        f"import json\nfrom {package}.schema import FEATURES\nrecord = {{}}\n"
        "for f in FEATURES:\n"
        "    if f.kind == 'categorical':\n"
        "        record[f.name] = f.categories[0]\n"
        "        continue\n"
        "    low = f.minimum if f.minimum is not None else 0\n"
        "    high = f.maximum if f.maximum is not None else low + 10\n"
        "    record[f.name] = int((low + high) / 2) if f.dtype == 'int' else (low + high) / 2\n"
        "print(json.dumps(record))\n"
    )
    out = sh(DOCKER, "exec", cname, "python", "-c", code, timeout=60).stdout
    return dict(json.loads(out.strip().splitlines()[-1]))


@contextmanager
def _object_store() -> Iterator[Any]:
    """moto's S3 server on every host address (the pods reach it through their gateway)."""
    from moto.server import ThreadedMotoServer

    with socket.socket() as sock:
        sock.bind(("0.0.0.0", 0))
        port = int(sock.getsockname()[1])
    server = ThreadedMotoServer(ip_address="0.0.0.0", port=port, verbose=False)
    server.start()
    try:
        yield port
    finally:
        server.stop()


def _bucket_keys(endpoint: str, bucket: str, keys: dict[str, str]) -> list[str]:
    import boto3

    client = boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1", **keys)
    pages = client.get_paginator("list_objects_v2").paginate(Bucket=bucket)
    return [item["Key"] for page in pages for item in page.get("Contents", [])]


def test_rendered_dev_pods_start_and_answer_their_probes(
    built: Callable[[str], Stack],
) -> None:
    import boto3

    stack = built("default")
    folder = stack.path / "secrets"
    folder.mkdir(exist_ok=True)
    for name in SECRET_FILES:
        if not (folder / name).exists():
            (folder / name).write_text(secrets.token_urlsafe(24))
    k8s = stack.path / "deploy" / "k8s"
    docs = _render(k8s / "overlays" / "dev")
    # The training Job as `make k8s-train` applies it (the overlay plus the Job).
    present = {(d["kind"], d["metadata"]["name"]) for d in docs}
    docs += [
        d for d in _render(k8s / "jobs" / "dev" / "train")
        if (d["kind"], d["metadata"]["name"]) not in present
    ]  # fmt: skip
    assert any(d["kind"] == "Job" and d["metadata"]["name"] == "training" for d in docs)
    # The Secrets `make k8s-secrets OVERLAY=dev` applies before the overlay (from ./secrets/).
    made = sh("make", "--no-print-directory", "k8s-secrets-render", "OVERLAY=dev", cwd=stack.path)
    docs += [d for d in yaml.safe_load_all(made.stdout) if d]
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
    with cluster.running(), _object_store() as s3_port:
        # The overlay's store "given by URL": moto at the host address of the pods' network.
        gateway = sh(
            DOCKER, "network", "inspect", "-f", "{{range .IPAM.Config}}{{.Gateway}}{{end}}",
            cluster.network,
        ).stdout.strip()  # fmt: skip
        endpoint = f"http://{gateway}:{s3_port}"
        settings = [
            d
            for d in docs
            if d["kind"] == "ConfigMap" and d["metadata"]["name"].startswith("settings")
        ]
        assert settings and all("MLFLOW_S3_ENDPOINT_URL" in d["data"] for d in settings)
        for doc in settings:
            doc["data"]["MLFLOW_S3_ENDPOINT_URL"] = doc["data"]["AWS_ENDPOINT_URL"] = endpoint
        destination = settings[0]["data"]["MLFLOW_ARTIFACTS_DESTINATION"]
        bucket = destination.removeprefix("s3://").split("/", 1)[0]
        keys = {
            "aws_access_key_id": (folder / "aws_access_key_id").read_text().strip(),
            "aws_secret_access_key": (folder / "aws_secret_access_key").read_text().strip(),
        }
        local = f"http://127.0.0.1:{s3_port}"
        boto3.client("s3", endpoint_url=local, region_name="us-east-1", **keys).create_bucket(
            Bucket=bucket
        )
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

        # train -> register: the rendered Job runs the pipeline against MLflow, whose proxy
        # writes the artifacts into the bucket.
        start = time.monotonic()
        training = cluster.start("Job", "training")
        assert training.wait_exit(1800) == 0, training.logs()
        trained_in = time.monotonic() - start
        stored = _bucket_keys(local, bucket, keys)
        assert any(key.endswith(".onnx") for key in stored), stored[:20]
        # -> serve: the replica that started without a model follows `champion` by itself
        # (MODEL_POLL_SECONDS of the overlay), no restart, no reload call.
        poll = float(settings[0]["data"]["MODEL_POLL_SECONDS"])
        deadline = time.monotonic() + 2 * poll + 120
        while not (ready := serving.probe("readinessProbe"))[0]:
            assert time.monotonic() < deadline, ready[1]
            time.sleep(2)
        # -> predict, through the published port of the rendered container.
        record = _example_record(serving.cname, stack.package)
        request = urllib.request.Request(
            f"http://127.0.0.1:{serving.host_port(8000)}/predict",
            data=json.dumps(record).encode(),
            headers={"Content-Type": "application/json"},
        )
        with urllib.request.urlopen(request, timeout=30) as response:
            body = json.loads(response.read())
        assert set(body["probabilities"]) >= {body["label"]}, body
        assert str(body["model_version"]) == "1", body
        print(f"k8s pods: training Job {trained_in:.0f} s", flush=True)
