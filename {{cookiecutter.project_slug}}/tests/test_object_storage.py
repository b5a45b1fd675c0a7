"""Artifacts and data on object storage, as the Kubernetes overlays run them: an S3-compatible
server (moto's server mode, what MLflow's and DVC's own suites use), the project's MLflow
entrypoint (docker/mlflow-entrypoint.sh) with the manifest's `--artifacts-destination s3://...`
and the endpoint/credential variables of the overlays, its backend store a fresh database on
TEST_POSTGRES_URL (Postgres, because the entrypoint and every deployment use it). The pipeline
logs, registers and promotes through the server's artifact proxy, the model server loads the
champion through it with no bucket credentials of its own, and the objects are in the bucket.
Then `dvc push` to an S3 remote on the same server and a fresh clone pulled the way the training
pods pull (docker/train-entrypoint.sh with DVC_REMOTE_URL): byte-identical data.

The credentials are given as values here; the `*_FILE` secrets of the pods are read by
docker/entrypoint.sh, which only accepts files under /run/secrets/ (the container tier runs it).
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from .conftest import (
    PROJECT_ROOT,
    require_env,
    run_pipeline_in_process,
    small_context,
    write_small_project,
)
from .db.helpers import fresh_postgres_database
from .serving.conftest import make_settings, running

pytestmark = pytest.mark.integration

BIN = Path(sys.executable).parent
KEYS = {"AWS_ACCESS_KEY_ID": "test-access-key", "AWS_SECRET_ACCESS_KEY": "test-secret-key"}
REGION = "us-east-1"
# The object-store settings of the dev overlay (deploy/k8s/overlays/dev/settings.env) and the
# base: the names the pods get; the endpoint is moto's, the buckets are theirs.
STORE_SETTINGS = (
    "MLFLOW_S3_ENDPOINT_URL",
    "AWS_ENDPOINT_URL",
    "MLFLOW_ARTIFACTS_DESTINATION",
    "DVC_REMOTE_URL",
)
DEFAULTS = {
    "MLFLOW_ARTIFACTS_DESTINATION": "s3://{{ cookiecutter.project_slug }}-mlflow/artifacts",
    "DVC_REMOTE_URL": "s3://{{ cookiecutter.project_slug }}-dvc/data",
}
RAW = Path("data/raw/transactions.csv")


def store_settings(endpoint: str) -> dict[str, str]:
    """The deployment's object-store settings with moto as the endpoint."""
    values = dict(DEFAULTS)
{%- if cookiecutter.use_kubernetes %}
    for env_file in ("deploy/k8s/base/settings.env", "deploy/k8s/overlays/dev/settings.env"):
        for line in (PROJECT_ROOT / env_file).read_text(encoding="utf-8").splitlines():
            key, _, value = line.partition("=")
            if key in STORE_SETTINGS and value:
                values[key] = value
{%- endif %}
    values["MLFLOW_S3_ENDPOINT_URL"] = values["AWS_ENDPOINT_URL"] = endpoint
    return values


def mlflow_server_args(destination: str) -> list[str]:
    """What the MLflow pod passes to the entrypoint (deploy/k8s/base/mlflow.yaml `args`)."""
{%- if cookiecutter.use_kubernetes %}
    from ruamel.yaml import YAML

    manifest = PROJECT_ROOT / "deploy/k8s/base/mlflow.yaml"
    manifests = YAML(typ="safe").load_all(manifest.read_text(encoding="utf-8"))
    deployment = next(m for m in manifests if m["kind"] == "Deployment")
    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    args = [str(arg) for arg in container["args"]]
    assert "$(MLFLOW_ARTIFACTS_DESTINATION)" in args, args
    return [destination if a == "$(MLFLOW_ARTIFACTS_DESTINATION)" else a for a in args]
{%- else %}
    return ["--artifacts-destination", destination]
{%- endif %}


def bucket_and_prefix(url: str) -> tuple[str, str]:
    assert url.startswith("s3://"), url
    bucket, _, prefix = url.removeprefix("s3://").partition("/")
    return bucket, prefix


@dataclass(frozen=True)
class ObjectStore:
    endpoint: str
    settings: dict[str, str]

    def client(self) -> Any:
        import boto3

        return boto3.client(
            "s3",
            endpoint_url=self.endpoint,
            region_name=REGION,
            aws_access_key_id=KEYS["AWS_ACCESS_KEY_ID"],
            aws_secret_access_key=KEYS["AWS_SECRET_ACCESS_KEY"],
        )

    def keys(self, url: str) -> list[str]:
        bucket, prefix = bucket_and_prefix(url)
        paginator = self.client().get_paginator("list_objects_v2")
        pages = paginator.paginate(Bucket=bucket, Prefix=prefix)
        return [item["Key"] for page in pages for item in page.get("Contents", [])]

    def env(self) -> dict[str, str]:
        """What a pod with the object store's secret has: the settings and the keys."""
        return {**self.settings, **KEYS, "AWS_DEFAULT_REGION": REGION}


@pytest.fixture(scope="module")
def object_store() -> Iterator[ObjectStore]:
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    try:
        host, port = server.get_host_and_port()
        store = ObjectStore(f"http://{host}:{port}", store_settings(f"http://{host}:{port}"))
        # The overlays' buckets must exist (docs/kubernetes.md): made here as an operator would.
        for key in ("MLFLOW_ARTIFACTS_DESTINATION", "DVC_REMOTE_URL"):
            store.client().create_bucket(Bucket=bucket_and_prefix(store.settings[key])[0])
        yield store
    finally:
        server.stop()


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _wait_healthy(url: str, process: subprocess.Popen[str], log: Path, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while True:
        if process.poll() is not None:
            pytest.fail(f"mlflow server exited {process.returncode}:\n{log.read_text()[-4000:]}")
        try:
            with urllib.request.urlopen(f"{url}/health", timeout=2) as response:
                if response.status == 200:
                    return
        except OSError:
            pass
        if time.monotonic() > deadline:
            pytest.fail(f"mlflow server not healthy in {timeout:.0f} s:\n{log.read_text()[-4000:]}")
        time.sleep(0.5)


@pytest.fixture(scope="module")
def tracking_server(
    object_store: ObjectStore, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[str]:
    """docker/mlflow-entrypoint.sh on a fresh Postgres database, artifacts to the bucket."""
    from sqlalchemy.engine import make_url

    server_url = require_env("TEST_POSTGRES_URL")
    if shutil.which("sh") is None:
        pytest.skip("sh is needed to run docker/mlflow-entrypoint.sh")
    log = tmp_path_factory.mktemp("mlflow-server") / "server.log"
    with fresh_postgres_database(server_url) as database_url:
        url = make_url(database_url)
        port = _free_port()
        env = {
            k: v
            for k, v in os.environ.items()
            if not k.startswith(("AWS_", "MLFLOW_")) and k != "PGPASSWORD"
        }
        env.update(
            object_store.env(),
            PATH=f"{BIN}{os.pathsep}{env.get('PATH', '')}",
            # The entrypoint's inputs (the entrypoint of every image turns *_FILE into these).
            POSTGRES_USER=str(url.username),
            PGPASSWORD=str(url.password or ""),
            POSTGRES_HOST=str(url.host),
            POSTGRES_PORT=str(url.port or 5432),
            MLFLOW_DATABASE=str(url.database),
            MLFLOW_SERVER_ENABLE_JOB_EXECUTION="false",
        )
        args = mlflow_server_args(object_store.settings["MLFLOW_ARTIFACTS_DESTINATION"])
        # Later options win: this machine's address and a free port instead of 0.0.0.0:5000.
        command = [
            "sh", str(PROJECT_ROOT / "docker/mlflow-entrypoint.sh"), *args,
            "--host", "127.0.0.1", "--port", str(port),
        ]  # fmt: skip
        with log.open("w") as output:
            process = subprocess.Popen(
                command, env=env, stdout=output, stderr=subprocess.STDOUT, text=True,
                start_new_session=True,
            )  # fmt: skip
        try:
            tracking_uri = f"http://127.0.0.1:{port}"
            # An empty database gets MLflow's schema first (tens of seconds on small machines).
            _wait_healthy(tracking_uri, process, log, timeout=240)
            yield tracking_uri
        finally:
            process.terminate()
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


@pytest.mark.slow
def test_pipeline_registers_to_bucket_and_server_loads_champion_through_proxy(
    tracking_server: str,
    object_store: ObjectStore,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import mlflow
    from mlflow import MlflowClient

    from {{ cookiecutter.package_name }}.serving.requests import example_record

    # Clients have no bucket credentials or endpoint: everything passes through the server.
    for name in (*KEYS, *STORE_SETTINGS, "AWS_PROFILE"):
        monkeypatch.delenv(name, raising=False)
    # A fresh `make pipeline` process has no active run or experiment; earlier tests of this
    # session may have left MLflow's process-wide ones (evaluate's start_run(run_id=...) then
    # refuses the run of another experiment).
    while mlflow.active_run():
        mlflow.end_run()
    for name in ("MLFLOW_EXPERIMENT_ID", "MLFLOW_EXPERIMENT_NAME", "MLFLOW_RUN_ID"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setattr(mlflow.tracking.fluent, "_active_experiment_id", None)
    name = "object-store-model"
    root = write_small_project(tmp_path / "project")
    ctx = small_context(
        root, tracking_uri=tracking_server, model_name=name, experiment_name="object-store"
    )
    result = run_pipeline_in_process(ctx)
    assert result.promotion["decision"] == "promoted", result.promotion

    client = MlflowClient(tracking_server, tracking_server)
    champion = client.get_model_version_by_alias(name, "champion")
    assert champion.version == str(result.train.version)
    run = client.get_run(str(champion.run_id))
    assert run.info.artifact_uri.startswith("mlflow-artifacts:/"), run.info.artifact_uri

    destination = object_store.settings["MLFLOW_ARTIFACTS_DESTINATION"]
    stored = object_store.keys(destination)
    run_objects = [key for key in stored if f"/{champion.run_id}/" in key]
    assert run_objects, f"no object of run {champion.run_id} under {destination}: {stored[:20]}"
    assert any(key.endswith(".onnx") for key in stored), stored

    with running(make_settings(tracking_server, name, tmp_path)) as app:
        response = app.post("/predict", json=example_record())
        assert response.status_code == 200, response.text
        assert response.json()["model_version"] == champion.version
        assert app.get("/model").json()["run_id"] == champion.run_id


def _run(cmd: list[str], cwd: Path, env: dict[str, str]) -> str:
    done = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, check=False)
    assert done.returncode == 0, (
        f"{' '.join(cmd)} failed:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
    )
    return done.stdout + done.stderr


def test_dvc_push_to_s3_remote_and_fresh_clone_pulls_identical_data(
    object_store: ObjectStore, tmp_path: Path
) -> None:
    if shutil.which("git") is None or shutil.which("sh") is None:
        pytest.skip("git and sh are needed (the project's own workflow)")
    root = tmp_path / "project"
    root.mkdir()
    for name in ("pyproject.toml", ".gitignore", ".dvcignore", ".dvc/config", ".dvc/.gitignore",
                 "data/raw/.gitignore"):  # fmt: skip
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(PROJECT_ROOT / name, root / name)
    write_small_project(root)
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("AWS_", "MLFLOW_")) and k not in {"PROJECT_ROOT", "DVC_REMOTE_URL"}
    }
    env.update(
        object_store.env(),
        PATH=f"{BIN}{os.pathsep}{env.get('PATH', '')}",
        GIT_AUTHOR_NAME="t",
        GIT_AUTHOR_EMAIL="t@t",
        GIT_COMMITTER_NAME="t",
        GIT_COMMITTER_EMAIL="t@t",
    )
    dvc = str(BIN / "dvc")
    remote_url = object_store.settings["DVC_REMOTE_URL"]
    _run(["git", "init", "-q", "-b", "main"], root, env)
    _run([sys.executable, "-m", "{{ cookiecutter.package_name }}", "generate", "--track"], root, env)
    _run(["git", "add", "-A"], root, env)
    _run(["git", "commit", "-qm", "data"], root, env)
    # This checkout's remote URL, as `dvc remote modify --local` (docs) and the pods do.
    _run([dvc, "remote", "modify", "--local", "storage", "url", remote_url], root, env)
    assert "1 file pushed" in _run([dvc, "push"], root, env)
    pushed = object_store.keys(remote_url)
    assert any("/files/md5/" in key for key in pushed), pushed

    clone = tmp_path / "clone"
    _run(["git", "clone", "-q", str(root), str(clone)], tmp_path, env)
    assert (clone / f"{RAW}.dvc").exists() and not (clone / RAW).exists()
    # The training pods' pull: the entrypoint points the default remote at DVC_REMOTE_URL.
    pull_env = {**env, "PROJECT_ROOT": str(clone), "DVC_PULL": "1", "DVC_REMOTE_URL": remote_url}
    _run(["sh", str(PROJECT_ROOT / "docker/train-entrypoint.sh"), "true"], clone, pull_env)
    assert (clone / RAW).read_bytes() == (root / RAW).read_bytes()
