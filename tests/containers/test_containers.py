"""Container tier: the generated images and Compose files, built and run for real.

For the default combination, a CUDA combination and one combination per framework: static
checks of every file combination, every image target built on the local stand-ins of the
shared container kit, then the default combination end to end (stack up, training profile to
completion against the containerised MLflow + Postgres, champion promoted, serving reloads it,
POST /predict through the published port, prediction-log row in Postgres, cached entry in
Redis, `down -v` leaves nothing) and a code-only change that rebuilds only the last layers.

Tests run in one xdist group, in order; each fixture builds what it needs if an earlier test
did not, so any test also runs alone. Images and the BuildKit cache are kept between runs.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import Baked
from tests.containers.stack import (
    DOCKER,
    KIT,
    Stack,
    build_steps,
    http,
    image_info,
    kit_available,
    provide_torch_wheels,
    run_in_image,
    sh,
    wait_for,
)

pytestmark = [pytest.mark.containers, pytest.mark.xdist_group("containers")]

# name -> answers. sklearn: default; xgboost: the CUDA combination (with monitoring, so its
# files are checked too); pytorch: CPU on Python 3.11 (the CPU wheel available offline here).
COMBOS: dict[str, dict[str, Any]] = {
    "default": {},
    "xgboost-cuda": {
        "model_framework": "xgboost",
        "compute": "cuda",
        "cuda_version": "12.6",
        "monitoring": "prometheus-grafana",
    },
    "pytorch-cpu": {"model_framework": "pytorch", "python_version": "3.11"},
}
# Checked statically only: the optional services switched off.
STATIC_ONLY: dict[str, dict[str, Any]] = {
    "minimal": {
        "python_version": "3.11",
        "use_redis_cache": False,
        "use_prediction_logging": False,
        "dvc_remote": "s3",
    },
}
ALL = COMBOS | STATIC_ONLY
# Published ports of the end-to-end stack: away from the defaults another tier may hold.
SERVING_PORT, MLFLOW_PORT, NGINX_PORT, PROMETHEUS_PORT = 18000, 15000, 18080, 19090
# Images without a stand-in (grafana: no Debian/PyPI/npm package): checked statically only.
NO_STANDIN = re.compile(r"^grafana/grafana")
SERVE_FORBIDDEN = ("dvc", "optuna", "pandas", "sklearn", "matplotlib", "torch", "xgboost")
TIMINGS: dict[str, float] = {}


def report(capsys: pytest.CaptureFixture[str], *lines: str) -> None:
    with capsys.disabled():
        print()
        for line in lines:
            print(f"[containers] {line}")


@pytest.fixture(scope="session")
def kit() -> Path:
    reason = kit_available()
    if reason:
        pytest.skip(reason)
    return KIT


@pytest.fixture(scope="session")
def stacks(bake_session: Callable[..., Baked], kit: Path) -> dict[str, Stack]:
    """The baked projects, each with its stand-ins provided and its build environment."""
    result: dict[str, Stack] = {}
    for name, answers in ALL.items():
        baked = bake_session(**answers)
        extra: dict[str, str] = {}
        # Published ports away from the defaults another tier (or a user's stack) may hold.
        offset = list(ALL).index(name)
        extra = {
            "SERVING_PORT": str(SERVING_PORT + offset),
            "MLFLOW_PORT": str(MLFLOW_PORT + offset),
            "PROMETHEUS_PORT": str(PROMETHEUS_PORT + offset),
        }
        if name == "default" and not baked.has_file("uv.lock"):
            # The locked path of the Dockerfile (`uv sync --frozen`); the others resolve.
            baked.run("uv", "lock", "--quiet", timeout=600)
        if answers.get("compute") == "cuda":
            # The CUDA stand-in is Debian without Python and the Python download host is
            # unreachable here: use the distribution's python3 (PYTHON_SOURCE=apt).
            extra["PYTHON_SOURCE"] = "apt"
        if answers.get("model_framework") == "pytorch":
            extra["UV_INDEX"] = provide_torch_wheels(baked.path)
        result[name] = Stack(name, baked.path, baked.package, extra)
    done = sh(
        str(kit / "up"), *(f"--scan={s.path}" for s in result.values()), check=False, timeout=1800
    )
    missing = [
        line.split()[0]
        for line in done.stdout.splitlines()
        if "NO STAND-IN" in line and not NO_STANDIN.match(line)
    ]
    assert not missing and (done.returncode == 0 or "NO STAND-IN" in done.stdout), (
        f"up failed for {missing}:\n{done.stdout[-4000:]}\n{done.stderr[-4000:]}"
    )
    return result


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
                sources = [x["source"] for v in services.values() for x in v.get("secrets", [])]
                assert sources and all(x.endswith("_file") for x in sources), sources
                for service in services.values():
                    assert not [v for v in service.get("volumes", []) if v["type"] == "bind"]
            if "compose.override.yaml" in files:
                published = services["serving"]["ports"][0]["published"]
                assert published == stack.extra_env["SERVING_PORT"]
    config = json.loads(stack.compose("config", "--format", "json").stdout)
    assert config["networks"]["backend"].get("internal") is True
    for service in ("db", "redis"):
        if service in config["services"]:
            assert list(config["services"][service]["networks"]) == ["backend"]


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
    assert "set POSTGRES_USER in .env" in done.stderr


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


# --- images ---------------------------------------------------------------------------------
def build(
    stack: Stack,
    *services: str,
    profiles: tuple[str, ...] = ("train",),
    env: dict[str, str] | None = None,
) -> tuple[float, str]:
    args = [a for p in profiles for a in ("--profile", p)]
    start = time.monotonic()
    done = sh(
        DOCKER,
        "compose",
        *args,
        "build",
        *services,
        cwd=stack.path,
        env=stack.env | (env or {}),
        timeout=2400,
    )
    return time.monotonic() - start, done.stdout + done.stderr


@pytest.fixture(scope="session")
def built(stacks: dict[str, Stack]) -> Callable[[str], Stack]:
    done: set[str] = set()

    def _built(name: str) -> Stack:
        stack = stacks[name]
        if name not in done:
            seconds, _ = build(stack, profiles=("train", "tune"))
            TIMINGS[f"build {name}"] = seconds
            if COMBOS[name].get("compute") == "cuda":
                # training-gpu, and the CPU training image of a CUDA project (COMPUTE=cpu).
                TIMINGS[f"build {name} gpu"], _ = build(stack, "training-gpu", profiles=("gpu",))
                TIMINGS[f"build {name} COMPUTE=cpu"], _ = build(
                    stack, "training", env={"COMPUTE": "cpu"}
                )
            done.add(name)
        return stack

    return _built


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


# --- end to end -----------------------------------------------------------------------------
@pytest.fixture
def running(built: Callable[[str], Stack]) -> Iterator[Stack]:
    stack = built("default")
    stack.down()
    try:
        done = stack.compose(
            "up", "-d", "--wait", "--wait-timeout", "300", check=False, timeout=600
        )
        assert done.returncode == 0, f"{done.stderr[-3000:]}\n{stack.logs()}"
        yield stack
    finally:
        stack.down()


def example_record(stack: Stack) -> dict[str, Any]:
    """A valid request built from the project's schema, inside the serve container."""
    code = (
        "import json\n"
        f"from {stack.package}.schema import FEATURES\n"
        "record = {}\n"
        "for f in FEATURES:\n"
        "    if f.kind == 'categorical':\n"
        "        record[f.name] = f.categories[0]\n"
        "        continue\n"
        "    low = f.minimum if f.minimum is not None else 0\n"
        "    high = f.maximum if f.maximum is not None else low + 10\n"
        "    value = (low + high) / 2\n"
        "    record[f.name] = int(value) if f.dtype == 'int' else float(value)\n"
        "print(json.dumps(record))\n"
    )
    out = stack.compose("exec", "-T", "serving", "python", "-c", code).stdout
    return dict(json.loads(out.strip().splitlines()[-1]))


def test_end_to_end(
    running: Stack, stacks: dict[str, Stack], capsys: pytest.CaptureFixture[str]
) -> None:
    stack = running
    serving = f"http://127.0.0.1:{SERVING_PORT}"
    mlflow = f"http://127.0.0.1:{MLFLOW_PORT}"
    assert http("GET", f"{serving}/health")[0] == 200
    assert http("GET", f"{serving}/ready")[0] == 503  # fresh volumes: no model yet
    assert http("GET", f"{mlflow}/health")[0] == 200
    volumes = stack.mounted_volumes()

    start = time.monotonic()
    # `make train`: docker compose --profile train run --rm --build training
    done = stack.run_make("train", timeout=1800)
    TIMINGS["e2e training run"] = time.monotonic() - start
    assert done.returncode == 0, f"{done.stdout[-4000:]}\n{done.stderr[-4000:]}"

    model = stack.package
    status, body = http(
        "GET", f"{mlflow}/api/2.0/mlflow/registered-models/alias?name={model}&alias=champion"
    )
    assert status == 200, body
    champion = body["model_version"]["version"]

    # `make reload`: POST /admin/reload?wait=true with ADMIN_TOKEN from .env
    done = stack.run_make("reload", timeout=300)
    assert done.returncode == 0, f"{done.stdout[-2000:]}\n{done.stderr[-2000:]}"
    body = json.loads(done.stdout.strip().splitlines()[-1])
    assert body["state"] == "ok" and str(body["version"]) == str(champion), body
    wait_for(lambda: http("GET", f"{serving}/ready")[0] == 200, 120, "serving ready")
    status, body = http("GET", f"{serving}/model")
    assert status == 200 and str(body["version"]) == str(champion), body

    record = example_record(stack)
    status, first = http("POST", f"{serving}/predict", record)
    assert status == 200, first
    assert first["model_version"] == str(champion) and first["cached"] is False
    assert set(first["probabilities"]) >= {first["label"]}
    status, second = http("POST", f"{serving}/predict", record)
    assert status == 200 and second["cached"] is True, second

    def logged() -> bool:
        sql = (
            "SELECT count(*) FROM prediction_log WHERE request_id = "
            f"'{first['request_id']}' AND model_version = '{champion}'"
        )
        out = stack.compose(
            "exec",
            "-T",
            "db",
            "sh",
            "-c",
            f'psql -U "$POSTGRES_USER" -d "$POSTGRES_DB" -tAc "{sql}"',
            check=False,
        ).stdout
        return out.strip() == "1"

    wait_for(logged, 60, "the prediction-log row in Postgres")

    # Every metric the Grafana dashboard (of a monitoring project) queries is exported.
    status, exported = http("GET", f"{serving}/metrics")
    assert status == 200
    monitored = stacks["xgboost-cuda"].path
    dashboard = (monitored / "monitoring/grafana/dashboards/serving.json").read_text("utf-8")
    queried = set(re.findall(r"\b([a-z_]+(?:_total|_bucket|_version))\b", dashboard))
    missing = {m for m in queried if f"\n{m}{{" not in exported and f"\n{m} " not in exported}
    assert queried and not missing, missing
    keys = stack.compose("exec", "-T", "redis", "redis-cli", "--scan").stdout.split()
    assert [k for k in keys if model in k and f":{champion}:" in k], keys

    # Optuna worker of the `tune` profile: a study in the Postgres `optuna` database.
    start = time.monotonic()
    stack.compose(
        "--profile",
        "tune",
        "run",
        "--rm",
        "tuner",
        "python",
        "-m",
        model,
        "tune",
        "--n-trials",
        "2",
        "--no-write",
        timeout=900,
    )
    TIMINGS["e2e tune (2 trials)"] = time.monotonic() - start
    trials = stack.compose(
        "exec",
        "-T",
        "db",
        "sh",
        "-c",
        'psql -U "$POSTGRES_USER" -d optuna -tAc "SELECT count(*) FROM trials"',
    ).stdout.strip()
    assert int(trials) >= 2, trials

    # Production variant on the same volumes: secrets from files, replicas behind nginx.
    sh("sh", "docker/prod-secrets.sh", cwd=stack.path)
    prod = ["-f", "compose.yaml", "-f", "compose.prod.yaml"]
    prod_env = {"SERVING_REPLICAS": "2", "HTTP_PORT": str(NGINX_PORT)}
    stack.extra_env.update(prod_env)
    try:
        done = stack.compose(
            *prod,
            "up",
            "-d",
            "--wait",
            "--wait-timeout",
            "300",
            "--remove-orphans",
            check=False,
            timeout=600,
        )
        assert done.returncode == 0, f"{done.stderr[-3000:]}\n{stack.logs()}"
        volumes |= stack.mounted_volumes()
        replicas = stack.compose(*prod, "ps", "-q", "serving").stdout.split()
        assert len(replicas) == 2, replicas
        proxy = f"http://127.0.0.1:{NGINX_PORT}"
        versions = set()
        for _ in range(4):
            status, body = http("POST", f"{proxy}/predict", record)
            assert status == 200, body
            versions.add(body["model_version"])
        assert versions == {str(champion)}
        assert http("GET", f"{proxy}/metrics")[0] == 404
    finally:
        for key in prod_env:
            stack.extra_env.pop(key, None)

    stack.down()
    assert stack.leftovers() == {"containers": [], "volumes": [], "networks": []}
    existing = set(sh(DOCKER, "volume", "ls", "-q").stdout.split())
    assert volumes and not volumes & existing, f"volumes left behind: {volumes & existing}"
    report(
        capsys,
        f"e2e: training profile {TIMINGS['e2e training run']:.0f} s, "
        f"tune worker {TIMINGS['e2e tune (2 trials)']:.0f} s; champion v{champion} served, "
        "logged and cached; prod variant (2 replicas behind nginx, file secrets) served it",
    )


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
