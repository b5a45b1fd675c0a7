"""Container tier: the generated images and Compose files, built and checked for real.

For the default combination, a CUDA combination and one combination per framework: static
checks of every file combination, every image target built on the local stand-ins of the
shared container kit, what the build context and the image layers hold, Prometheus scraping
the replicas, and a code-only change that rebuilds only the last layers. The default
combination running end to end is test_end_to_end.py.

Tests run in one xdist group, in order; each fixture builds what it needs if an earlier test
did not, so any test also runs alone. Images and the BuildKit cache are kept between runs.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import shutil
import subprocess
import tarfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import Baked
from tests.containers.stack import (
    ALL,
    COMBOS,
    DOCKER,
    SERVE_FORBIDDEN,
    TIMINGS,
    Stack,
    build,
    build_steps,
    docker_env,
    http,
    image_info,
    report,
    run_in_image,
    sh,
    wait_for,
)

pytestmark = [pytest.mark.containers, pytest.mark.xdist_group("containers")]


# --- static ---------------------------------------------------------------------------------
@pytest.mark.parametrize("name", list(ALL))
def test_static_checks(stacks: dict[str, Stack], kit: Path, name: str) -> None:
    """hadolint, Engine 20.10 limits, compose config of base/+override/+prod, compose-spec."""
    stack = stacks[name]
    sh(str(kit / "check-static"), str(stack.path), env=stack.env, timeout=600)


@pytest.mark.parametrize("name", list(ALL))
def test_every_file_and_profile_combination_is_valid(stacks: dict[str, Stack], name: str) -> None:
    stack = stacks[name]
    profiles = ["", "train", "gpu", "tune"]
    if ALL[name].get("monitoring") == "prometheus-grafana":
        profiles.append("monitoring")
    for files in ([], ["compose.override.yaml"], ["compose.prod.yaml"]):
        for profile in profiles:
            args = ["-f", "compose.yaml"] + [a for f in files for a in ("-f", f)]
            args += ["--profile", profile] if profile else []
            config = json.loads(stack.compose(*args, "config", "--format", "json").stdout)
            services = config["services"]
            assert "version" not in config
            for service in services.values():
                for port in service.get("ports", []):
                    assert port.get("host_ip") == "127.0.0.1", (files, profile, port)
            if "compose.prod.yaml" in files:
                assert "ports" not in services["serving"], "replicas cannot share a port"
                assert services["serving"]["deploy"]["replicas"] >= 2
                assert "nginx" in services
                for service in services.values():
                    assert not [v for v in service.get("volumes", []) if v["type"] == "bind"]
            # Secrets are files (an `environment:` secret cannot reach a read-only container).
            assert config["secrets"] and all(
                set(v) == {"name", "file"} for v in config["secrets"].values()
            ), config["secrets"]
            for name, service in services.items():
                assert_service_hardened(name, service)
            if "compose.override.yaml" in files:
                published = services["serving"]["ports"][0]["published"]
                assert published == stack.extra_env["SERVING_PORT"]
    config = json.loads(stack.compose("config", "--format", "json").stdout)
    assert config["networks"]["backend"].get("internal") is True
    for service in ("db", "redis"):
        if service in config["services"]:
            assert list(config["services"][service]["networks"]) == ["backend"]


# One-shot services that write into their image's tree (DVC: dvc.lock, data/, models/).
WRITABLE_ROOT = {"training", "training-gpu", "tuner"}


def assert_service_hardened(name: str, service: dict[str, Any]) -> None:
    """Every service of every profile: what test_end_to_end checks on the running containers."""
    assert service.get("cap_drop") == ["ALL"] and not service.get("cap_add"), name
    assert "no-new-privileges:true" in service.get("security_opt", []), name
    assert service.get("init") is True, name
    limits = service.get("deploy", {}).get("resources", {}).get("limits", {})
    assert limits.get("cpus") and limits.get("memory") and limits.get("pids"), (name, limits)
    assert service.get("read_only", False) is (name not in WRITABLE_ROOT), name
    assert not service.get("privileged"), name


def test_make_targets_of_the_daily_loop(stacks: dict[str, Stack]) -> None:
    stack = stacks["default"]
    targets = (
        "up",
        "down",
        "train",
        "train-gpu",
        "compose-tune",
        "reload",
        "logs",
        "bench-images",
        "prod-secrets",
        "prod-up",
        "prod-down",
    )
    done = sh("make", "-n", *targets, cwd=stack.path, env=stack.env)
    assert "--profile train run --rm --build training" in done.stdout
    assert "--profile gpu run --rm --build training-gpu" in done.stdout
    assert "--scale tuner=" in done.stdout


def test_required_variables_fail_with_a_message(stacks: dict[str, Stack]) -> None:
    stack = stacks["default"]
    done = stack.compose("--env-file", "/dev/null", "config", "-q", check=False)
    assert done.returncode != 0
    # Compose names the first unset variable it meets; either of the database names will do.
    assert re.search(r"set POSTGRES_(USER|DB) in \.env", done.stderr), done.stderr


@pytest.mark.parametrize("name", list(ALL))
def test_hadolint_ignores_are_explained(stacks: dict[str, Stack], name: str) -> None:
    root = stacks[name].path
    lines = (root / "docker" / "Dockerfile").read_text(encoding="utf-8").splitlines()
    for number, line in enumerate(lines):
        if "hadolint ignore=" in line:
            above = lines[number - 1].strip()
            assert above.startswith("#") and "hadolint" not in above, f"line {number + 1}"
    config = (root / ".hadolint.yaml").read_text(encoding="utf-8").splitlines()
    for number, line in enumerate(config):
        if re.match(r"\s*- DL\d+", line):
            assert config[number - 1].strip().startswith("#"), line


# checkov: the policy scanner of the Dockerfile, the CI workflows and committed secrets (it has
# no Compose framework: test_every_file_and_profile_combination_is_valid holds the Compose
# policy, assert_service_hardened).
CHECKOV = os.environ.get("ML_COMPOSE_CHECKOV") or shutil.which("checkov")
CHECKOV_FRAMEWORKS = ("dockerfile", "secrets", "github_actions", "gitlab_ci")


@pytest.mark.parametrize("name", list(ALL))
def test_checkov_finds_nothing_and_every_skip_says_why(
    bake_session: Callable[..., Baked], name: str
) -> None:
    assert CHECKOV, "checkov not found: `uv tool install checkov` or set ML_COMPOSE_CHECKOV"
    root = bake_session(**ALL[name]).path
    done = sh(
        CHECKOV, "-d", str(root), "--framework", *CHECKOV_FRAMEWORKS,
        "--quiet", "--compact", "--skip-download", "-o", "json",
        env=docker_env({"BC_SKIP_MAPPING": "TRUE"}), check=False, timeout=900,
    )  # fmt: skip
    reports = json.loads(done.stdout)
    reports = reports if isinstance(reports, list) else [reports]
    assert {r["check_type"] for r in reports} >= {"dockerfile"}, done.stdout[-2000:]
    failed = [
        f"{c['check_id']} {c['file_path']}:{c['file_line_range']}"
        for r in reports
        for c in r["results"]["failed_checks"]
    ]
    assert not failed, failed
    for path in root.rglob("*"):
        if path.is_file() and ".git" not in path.parts:
            text = path.read_text(encoding="utf-8", errors="replace")
            for skip in re.findall(r"checkov:skip=([^\n]*)", text):
                check, _, reason = skip.partition(":")
                assert re.fullmatch(r"CKV\w+", check) and len(reason.strip()) >= 10, (path, skip)


# --- images ---------------------------------------------------------------------------------
def assert_runtime_image(ref: str) -> dict[str, Any]:
    config = image_info(ref)["Config"]
    assert config["User"] == "10001:10001", f"{ref} runs as {config['User']!r}"
    compilers = run_in_image(ref, "sh", "-c", "command -v gcc cc c++ clang || true")
    assert not compilers.strip(), f"{ref} has compilers: {compilers}"
    return config


@pytest.mark.parametrize("name", list(COMBOS))
def test_every_target_builds(
    built: Callable[[str], Stack], name: str, capsys: pytest.CaptureFixture[str]
) -> None:
    stack = built(name)
    framework = COMBOS[name].get("model_framework", "sklearn")
    module = {"sklearn": "sklearn", "xgboost": "xgboost", "pytorch": "torch"}[framework]
    trains = ["train-cuda"] if COMBOS[name].get("compute") == "cuda" else []
    trains.append("train-cpu")

    serve = assert_runtime_image(stack.image("serve"))
    check = serve["Healthcheck"]
    assert "urllib" in " ".join(check["Test"]) and check["StartPeriod"] >= 60 * 10**9
    present = run_in_image(
        stack.image("serve"),
        "python",
        "-c",
        "import importlib.util as u, sys; "
        "print(' '.join(m for m in sys.argv[1:] if u.find_spec(m)))",
        *SERVE_FORBIDDEN,
    ).split()
    assert not present, f"serve image carries training libraries: {present}"
    run_in_image(stack.image("serve"), "python", "-c", "import onnxruntime, fastapi")

    for kind in trains:
        config = assert_runtime_image(stack.image(kind))
        assert config["Entrypoint"] == ["entrypoint", "train-entrypoint"]
        run_in_image(stack.image(kind), "python", "-c", f"import {module}, dvc, mlflow, optuna")
        run_in_image(stack.image(kind), "dvc", "--version")

    assert_runtime_image(stack.image("mlflow"))
    run_in_image(stack.image("mlflow"), "python", "-c", "import mlflow.server, psycopg")

    timings = [f"{k}: {v:.0f} s" for k, v in TIMINGS.items() if k.startswith(f"build {name}")]
    report(capsys, *timings)
    if COMBOS[name].get("compute") == "cuda":
        report(
            capsys,
            f"{name}: CUDA image built on the stand-in (Debian bookworm, apt python3, no CUDA "
            "libraries, no GPU): the nvidia/cuda base, the uv-managed Python, GPU training and "
            "the NVIDIA device reservation are not verified here.",
        )


@pytest.mark.parametrize("name", list(COMBOS))
def test_image_sizes(
    built: Callable[[str], Stack], name: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """Every framework: the serve image at most 40% of the (smaller, CPU) training image."""
    stack = built(name)
    serve = image_info(stack.image("serve"))["Size"]
    train = image_info(stack.image("train-cpu"))["Size"]
    report(
        capsys,
        f"{name}: serve image {serve / 1e6:.0f} MB, train image (cpu) {train / 1e6:.0f} MB, "
        f"serve/train {serve / train:.0%} (goal: at most 40%)",
    )
    assert serve <= 0.40 * train


# --- monitoring -----------------------------------------------------------------------------
def test_prometheus_scrapes_every_serving_replica(built: Callable[[str], Stack]) -> None:
    """Profile `monitoring` (Prometheus part; Grafana has no stand-in image)."""
    stack = built("xgboost-cuda")
    stack.down()
    try:
        # compose.yaml alone: the override publishes serving, which two replicas cannot share.
        done = stack.compose(
            "-f",
            "compose.yaml",
            "--profile",
            "monitoring",
            "up",
            "-d",
            "--wait",
            "--wait-timeout",
            "300",
            "--scale",
            "serving=2",
            "serving",
            "prometheus",
            check=False,
            timeout=600,
        )
        assert done.returncode == 0, f"{done.stderr[-3000:]}\n{stack.logs()}"
        prometheus = f"http://127.0.0.1:{stack.extra_env['PROMETHEUS_PORT']}"

        def scraped() -> list[dict[str, Any]] | None:
            status, body = http("GET", f"{prometheus}/api/v1/targets")
            if status != 200:
                return None
            targets = [t for t in body["data"]["activeTargets"] if t["labels"]["job"] == "serving"]
            healthy = [t for t in targets if t["health"] == "up"]
            return healthy if len(healthy) == 2 else None

        wait_for(scraped, 180, "Prometheus scraping both serving replicas", interval=5)
        # Every rules file of the project is loaded (through the rules/*.yml glob).
        status, body = http("GET", f"{prometheus}/api/v1/rules")
        assert status == 200, body
        loaded = {Path(g["file"]).name for g in body["data"]["groups"]}
        rules = stack.path / "monitoring" / "prometheus"
        assert loaded == {p.name for p in rules.glob("*rules.yml")}
    finally:
        stack.down()


# --- layer cache ----------------------------------------------------------------------------
def test_code_only_change_rebuilds_only_the_last_layers(
    built: Callable[[str], Stack], capsys: pytest.CaptureFixture[str]
) -> None:
    stack = built("default")
    init = stack.path / "src" / stack.package / "__init__.py"
    init.write_text(
        init.read_text(encoding="utf-8") + f"# touched {time.time()}\n", encoding="utf-8"
    )
    seconds, log = build(stack, "serving", "training")
    # FROM lines always report DONE (they resolve the base image): not layers of ours.
    steps = {k: v for k, v in build_steps(log).items() if not k[1].startswith("FROM ")}
    deps = {k: v for k, v in steps.items() if k[0].startswith("deps-") or k[0] == "base"}
    assert deps and all(v == "CACHED" for v in deps.values()), deps
    venv = {k: v for k, v in steps.items() if k[1].startswith("COPY --from=deps-")}
    assert len(venv) == 2 and all(v == "CACHED" for v in venv.values()), venv
    code = {k: v for k, v in steps.items() if k[1].startswith("COPY --from=code")}
    assert len(code) == 2 and all(v == "DONE" for v in code.values()), code
    cold = TIMINGS.get("build default")
    report(
        capsys,
        f"default: rebuild after a code-only change {seconds:.1f} s (serve + train; "
        f"{sum(v == 'CACHED' for v in steps.values())}/{len(steps)} steps cached)"
        + (f"; first build in this run {cold:.0f} s" if cold else ""),
    )


# --- secrets stay out of the build context and the images -----------------------------------
# Files that hold credentials in a working copy: none may reach the build context.
BAIT = {
    ".env.local": "BAIT_ENV_LOCAL={}\n",
    ".env.production": "BAIT_ENV_PRODUCTION={}\n",
    ".dvc/config.local": "['remote \"storage\"']\n    secret_access_key = {}\n",
    "secrets/bait_password": "{}",
    "src/.env": "NESTED={}\n",
}


def context_files(stack: Stack, dest: Path) -> set[str]:
    """The build context exactly as the builder receives it (.dockerignore applied)."""
    done = subprocess.run(
        [DOCKER, "build", "-q", "-f-", "-o", f"type=local,dest={dest}", "."],
        input="FROM scratch\nCOPY . /\n",
        cwd=stack.path,
        env=stack.env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return {p.relative_to(dest).as_posix() for p in dest.rglob("*") if p.is_file()}


def layer_hits(ref: str, needles: dict[str, bytes]) -> list[str]:
    """Every layer of `ref` (`docker save`): paths named like a secret, files holding one."""
    names = re.compile(r"(^|/)(\.env(\.(?!example$)[^/]*)?|config\.local)$|(^|/)secrets/")
    hits: list[str] = []
    save = subprocess.Popen([DOCKER, "save", ref], stdout=subprocess.PIPE, env=docker_env())
    assert save.stdout is not None
    with tarfile.open(fileobj=save.stdout, mode="r|") as image:
        for member in image:
            # Engine 20.10: <id>/layer.tar; OCI layouts: blobs/sha256/<digest>.
            if not member.isfile() or not (
                member.name.endswith("layer.tar") or "blobs/" in member.name
            ):
                continue
            blob = image.extractfile(member)
            assert blob is not None
            try:
                with tarfile.open(fileobj=blob, mode="r|*") as layer:
                    for entry in layer:
                        if names.search(entry.name):
                            hits.append(f"{ref}: {entry.name}")
                        if entry.isfile() and entry.size < 2_000_000:
                            handle = layer.extractfile(entry)
                            data = handle.read() if handle else b""
                            hits += [
                                f"{entry.name} holds {w}" for w, v in needles.items() if v in data
                            ]
            except tarfile.ReadError:
                continue  # a config or manifest blob, not a layer
    assert save.wait(timeout=60) == 0
    return hits


def test_secrets_never_reach_the_build_context_or_the_images(
    built: Callable[[str], Stack], tmp_path: Path
) -> None:
    stack = built("default")
    needles = {}
    for name, text in BAIT.items():
        value = f"bait-{name.replace('/', '-')}-{secrets.token_hex(8)}"
        needles[name] = value.encode()
        (stack.path / name).parent.mkdir(parents=True, exist_ok=True)
        (stack.path / name).write_text(text.format(value), encoding="utf-8")
    # The real secrets of the project too: .env's values and the files under secrets/.
    for path in (stack.path / "secrets").iterdir():
        needles.setdefault(f"secrets/{path.name}", path.read_bytes().strip())
    try:
        files = context_files(stack, tmp_path / "context")
        assert ".env.example" in files and "pyproject.toml" in files, sorted(files)[:20]
        leaked = {f for f in files if f in BAIT or f == ".env" or f.startswith("secrets/")}
        assert not leaked, leaked
        build(stack, "serving", "training", "mlflow")
        for kind in ("serve", "train-cpu", "mlflow"):
            hits = layer_hits(stack.image(kind), needles)
            assert not hits, (kind, hits[:20])
    finally:
        for name in BAIT:
            (stack.path / name).unlink(missing_ok=True)


def test_prod_secrets_refuses_placeholders_and_short_values(
    bake_session: Callable[..., Baked], tmp_path: Path
) -> None:
    """docker/prod-secrets.sh (`make prod-secrets`), on a copy of the generated project."""
    project = tmp_path / "project"
    shutil.copytree(bake_session().path, project, ignore=shutil.ignore_patterns(".git"))

    def run() -> subprocess.CompletedProcess[str]:
        return sh("sh", "docker/prod-secrets.sh", cwd=project, check=False, timeout=60)

    done = run()
    assert done.returncode == 0 and "keep      secrets/admin_token" in done.stdout, done
    secrets_dir = project / "secrets"
    for weak in ("change-me", "short-but-random-9Zq"):
        (secrets_dir / "admin_token").write_text(weak, encoding="utf-8")
        done = run()
        assert done.returncode == 1 and "refused secrets/admin_token" in done.stderr, done
    (secrets_dir / "admin_token").write_text(secrets.token_urlsafe(32), encoding="utf-8")

    env = project / ".env"
    lines = env.read_text(encoding="utf-8").splitlines()
    (secrets_dir / "redis_password").unlink()
    (secrets_dir / "optuna_db_password").unlink()
    kept = [line for line in lines if not line.startswith(("REDIS_PASSWORD=", "OPTUNA_DB_"))]
    env.write_text("\n".join([*kept, "REDIS_PASSWORD=change-me"]) + "\n", encoding="utf-8")
    done = run()
    assert done.returncode == 1 and "refused REDIS_PASSWORD in .env" in done.stderr, done
    assert not (secrets_dir / "redis_password").exists()
    assert "random    secrets/optuna_db_password" in done.stdout, done.stdout
    assert len((secrets_dir / "optuna_db_password").read_text(encoding="utf-8")) >= 24
