"""Applying a finished study's best parameters (what the Kubernetes and Compose tuning workers
leave in Postgres): `tune --apply-best` against a real Optuna study on TEST_POSTGRES_URL writes
exactly the best trial's parameters into `params.yaml: train` and nothing else; a missing or
trial-less study is one line and leaves the file alone. `tune --show-best | tune --apply-best
--from-json -` is the route `make compose-tune` takes{% if cookiecutter.use_kubernetes %}; `make k8s-tune-apply` reads
the study through a port-forward{% endif %}."""

from __future__ import annotations

import io
import json
{%- if cookiecutter.use_kubernetes %}
import os
import shutil
import subprocess
{%- endif %}
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from ..conftest import {% if cookiecutter.use_kubernetes %}PROJECT_ROOT, {% endif %}small_context, write_small_project
from .test_services import optuna_database  # noqa: F401  (fixture)

BIN = Path(sys.executable).parent
pytestmark = pytest.mark.integration
# Objective values of the trials the "workers" finished: the third is the best.
VALUES = (0.61, 0.58, 0.83, 0.72)


def _yaml(path: Path) -> dict[str, Any]:
    from {{ cookiecutter.package_name }}.pipeline.params import load_params

    return load_params(path)


@dataclass
class Done:
    returncode: int
    stdout: str
    stderr: str


@pytest.fixture
def tune_cli(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> Callable[..., Done]:
    """`{{ cookiecutter.package_name }} tune ...` as the shell runs it, in this process (each
    interpreter start pays seconds of imports; the Make target test starts a real one)."""
    from {{ cookiecutter.package_name }}.cli import main

    for name in ("OPTUNA_STORAGE", "PGPASSWORD"):
        monkeypatch.delenv(name, raising=False)

    def run(root: Path, *args: str, stdin: str | None = None) -> Done:
        capsys.readouterr()
        monkeypatch.setattr(sys, "stdin", io.StringIO(stdin or ""))
        code = main(["tune", "--params", str(root / "params.yaml"), *args])
        out = capsys.readouterr()
        return Done(code, out.out, out.err)

    return run


def _finished_study(storage: str, study_name: str) -> dict[str, Any]:
    """A study as the workers leave it: completed trials (parameters from the project's own
    search space, recorded as `tune` records them), a pruned, a failed and a running one."""
    import optuna

    from {{ cookiecutter.package_name }} import models

    study = optuna.create_study(study_name=study_name, storage=storage, direction="maximize")
    best: dict[str, Any] = {}
    for value in VALUES:
        trial = study.ask()
        suggested = models.suggest_params(trial)
        trial.set_user_attr("params", suggested)
        study.tell(trial, value)
        if value == max(VALUES):
            best = suggested
    study.tell(study.ask(), state=optuna.trial.TrialState.PRUNED)
    study.tell(study.ask(), state=optuna.trial.TrialState.FAIL)
    study.ask()  # still RUNNING: a worker mid-trial
    assert best and study.best_value == max(VALUES)
    return best


@pytest.fixture
def project(tmp_path: Path) -> tuple[Path, str]:
    root = write_small_project(tmp_path / "project")
    ctx = small_context(root)
    from {{ cookiecutter.package_name }}.pipeline.tune import default_study_name

    return root, default_study_name(ctx)


def _applied(before: dict[str, Any], best: dict[str, Any]) -> dict[str, Any]:
    return {**before, "train": {**before["train"], **best}}


def test_apply_best_writes_exactly_the_best_trial(
    project: tuple[Path, str],
    optuna_database: str,  # noqa: F811
    tune_cli: Callable[..., Done],
) -> None:
    _tune = tune_cli
    root, study_name = project
    best = _finished_study(optuna_database, study_name)
    before = _yaml(root / "params.yaml")
    assert any(before["train"].get(k) != v for k, v in best.items()), "nothing would change"
    text_before = (root / "params.yaml").read_text()

    done = _tune(root, "--apply-best", "--storage", optuna_database)
    assert done.returncode == 0, done.stderr
    after = _yaml(root / "params.yaml")
    assert after == _applied(before, best)
    assert "0.8300" in done.stdout and study_name in done.stdout, done.stdout
    # Comments survive (ruamel round trip), and the password never reaches the output.
    comments = [line for line in text_before.splitlines() if line.lstrip().startswith("#")]
    assert all(line in (root / "params.yaml").read_text() for line in comments)
    assert ":ci@" not in done.stdout + done.stderr

    # The Compose route: a container prints the trial, the host applies it.
    (root / "params.yaml").write_text(text_before)
    shown = _tune(root, "--show-best", "--storage", optuna_database)
    assert shown.returncode == 0, shown.stderr
    assert json.loads(shown.stdout)["params"] == best
    piped = _tune(root, "--apply-best", "--from-json", "-", stdin=shown.stdout)
    assert piped.returncode == 0, piped.stderr
    assert _yaml(root / "params.yaml") == _applied(before, best)


def test_missing_or_empty_study_is_one_line(
    project: tuple[Path, str],
    optuna_database: str,  # noqa: F811
    tune_cli: Callable[..., Done],
) -> None:
    import optuna

    _tune = tune_cli
    root, study_name = project
    text_before = (root / "params.yaml").read_text()

    def refused(*args: str, stdin: str | None = None) -> str:
        done = _tune(root, "--apply-best", *args, stdin=stdin)
        assert done.returncode == 1, (done.stdout, done.stderr)
        lines = done.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("error: "), done.stderr
        assert (root / "params.yaml").read_text() == text_before
        return lines[0]

    # A database the workers never reached (no Optuna tables), then another study only.
    line = refused("--storage", optuna_database)
    assert f"no Optuna study {study_name!r}" in line and "make k8s-tune" in line, line
    optuna.create_study(study_name="someone-else", storage=optuna_database)
    assert f"no Optuna study {study_name!r}" in refused("--storage", optuna_database)
    # The study exists, its workers have not finished a trial.
    optuna.create_study(study_name=study_name, storage=optuna_database)
    line = refused("--storage", optuna_database)
    assert "no completed trial" in line and study_name in line, line
    assert "--from-json -" in refused("--from-json", "-", stdin="")
{%- if cookiecutter.use_kubernetes %}


def _env() -> dict[str, str]:
    drop = {"OPTUNA_STORAGE", "MLFLOW_TRACKING_URI", "MODEL_NAME", "PROJECT_ROOT", "PGPASSWORD"}
    env = {k: v for k, v in os.environ.items() if k not in drop}
    env["PATH"] = f"{BIN}{os.pathsep}{env.get('PATH', '')}"
    return env


# A stand-in for `kubectl port-forward` (no cluster here): it forwards the local port to the
# test Postgres and prints kubectl's ready line; it records its arguments.
FAKE_KUBECTL = """#!{python}
import socket, sys, threading
open({calls!r}, "a").write(" ".join(sys.argv[1:]) + "\\n")
local = int(sys.argv[sys.argv.index("port-forward") + 2].split(":")[0])
server = socket.create_server(("127.0.0.1", local))
print("Forwarding from 127.0.0.1:%d -> 5432" % local, flush=True)

def pipe(a, b):
    while data := a.recv(65536):
        b.sendall(data)
    b.close()

while True:
    client, _ = server.accept()
    upstream = socket.create_connection(({host!r}, {port}))
    threading.Thread(target=pipe, args=(client, upstream), daemon=True).start()
    threading.Thread(target=pipe, args=(upstream, client), daemon=True).start()
"""


def test_make_k8s_tune_apply_reads_the_study_through_a_port_forward(
    project: tuple[Path, str],
    optuna_database: str,  # noqa: F811
    tmp_path: Path,
) -> None:
    import socket

    import sqlalchemy as sa

    if shutil.which("make") is None:
        pytest.skip("make is needed (the project's own workflow)")
    root, study_name = project
    best = _finished_study(optuna_database, study_name)
    before = _yaml(root / "params.yaml")
    shutil.copy(PROJECT_ROOT / "Makefile", root / "Makefile")
    url = sa.make_url(optuna_database)
    calls = tmp_path / "kubectl-calls"
    kubectl = tmp_path / "kubectl"
    kubectl.write_text(
        FAKE_KUBECTL.format(python=sys.executable, calls=str(calls), host=url.host, port=url.port)
    )
    kubectl.chmod(0o755)
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    # The dev database's role and database are the test server's here; the password arrives
    # as PGPASSWORD, as the target passes secrets/optuna_db_password.
    through_forward = url.set(host="127.0.0.1", port=port, password=None)
    done = subprocess.run(
        [
            "make", "--no-print-directory", "k8s-tune-apply", "RUN=", f"KUBECTL={kubectl}",
            "K8S_NS={{ cookiecutter.project_slug }}-dev", f"K8S_DB_PORT={port}",
            f"K8S_OPTUNA_STORAGE={through_forward.render_as_string(hide_password=False)}",
        ],
        cwd=root, env={**_env(), "PGPASSWORD": str(url.password or "")},
        capture_output=True, text=True, check=False, timeout=120,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    assert _yaml(root / "params.yaml") == _applied(before, best)
    assert calls.read_text().split() == [
        "-n", "{{ cookiecutter.project_slug }}-dev", "port-forward", "svc/db", f"{port}:5432"
    ]  # fmt: skip
{%- endif %}
