"""deploy/k8s of a generated project: every kustomization renders with plain kustomize (kubectl's,
default load restrictions: what Argo CD and Flux run), validates strictly against the schemas of
a current Kubernetes release (the InferenceService and ExternalSecrets against their CRD
schemas, tests/schemas), passes checkov, and says what compose.yaml,
the Dockerfile and the Settings object say (names, ports, probe paths, images, secrets), read
from those files so the two stacks cannot drift.

No cluster runs here: what is proved is the rendered manifests, not their behaviour in one.
"""

from __future__ import annotations

import base64
import functools
import importlib
import ipaddress
import json
import re
import secrets
import shutil
import subprocess
import sys
import types
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any

import jinja2
import kubernetes_validate
import pytest
import yaml

from tests import kserve_crd
from tests.combinations import SUPPORTED
from tests.conftest import TEMPLATE, Baked, render_answers
from tests.serving_routes import concrete, scoring_routes

KUBECTL = shutil.which("kubectl")
CHECKOV = Path(sys.executable).parent / "checkov"
# The newest release whose schemas kubernetes-validate ships.
K8S_VERSION = kubernetes_validate.latest_version()

# What changes deploy/k8s: the conditions of its templates ({% if ... %}), read from them.
K8S_TEMPLATES = TEMPLATE / "{{cookiecutter.project_slug}}" / "deploy" / "k8s"


def _conditions() -> list[str]:
    found = set()
    for path in K8S_TEMPLATES.rglob("*"):
        if path.is_file():
            found |= set(re.findall(r"\{%-?\s*(?:if|elif)\s+(.+?)\s*-?%\}", path.read_text()))
    return sorted(found)


def _kubernetes_combinations() -> dict[str, dict[str, Any]]:
    """The fewest SUPPORTED answer sets (with the manifests) under which every condition of
    the templates is once true and once false: a greedy cover of (condition, outcome)."""
    environment = jinja2.Environment()
    outcomes: dict[str, set[tuple[str, bool]]] = {}
    for name, answers in SUPPORTED.items():
        context = render_answers(**answers)
        if context["use_kubernetes"]:
            outcomes[name] = {
                (c, bool(environment.compile_expression(c)(cookiecutter=context)))
                for c in _conditions()
            }
    needed = set().union(*outcomes.values())
    chosen: list[str] = ["default"] if "default" in outcomes else []
    needed -= set().union(set(), *(outcomes[n] for n in chosen))
    while needed:
        best = max(outcomes, key=lambda n: len(outcomes[n] & needed))
        chosen.append(best)
        needed -= outcomes[best]
    return {name: SUPPORTED[name] for name in chosen}


COMBINATIONS = _kubernetes_combinations()
# Files `make k8s-secrets` reads beyond compose.yaml's: the object-store keys (Compose keeps
# artifacts on a volume); the generator writes the others.
OBJECT_STORE_FILES = ("aws_access_key_id", "aws_secret_access_key")
# Environment names no file of the project defines: the libraries' own (CONVENTIONS.md).
LIBRARY_ENV = {
    "MLFLOW_S3_ENDPOINT_URL": "MLflow's S3 artifact client",
    "AWS_ENDPOINT_URL": "botocore (DVC's s3fs, boto3)",
    "AWS_ACCESS_KEY_ID_FILE": "the entrypoint's *_FILE convention -> botocore",
    "AWS_SECRET_ACCESS_KEY_FILE": "the entrypoint's *_FILE convention -> botocore",
    "PGSSLMODE": "libpq",
    "PGDATA": "the postgres image",
}
# Kubernetes object -> the Compose service it stands for.
COMPOSE_SERVICE = {
    "serving": "serving",
    "mlflow": "mlflow",
    "mlflow-db-upgrade": "mlflow",
    "migrate": "migrate",
    "redis": "redis",
    "db": "db",
    "training": "training",
    "tuner": "tuner",
    "tuner-study": "tuner",
}
# Helper Jobs that are a client of their service's database only: they carry its database
# identity (same role, same password file), none of its other settings or secrets.
DATABASE_IDENTITY = {"mlflow-db-upgrade": ("POSTGRES_USER", "POSTGRES_PASSWORD_FILE")}


@dataclass
class Project:
    baked: Baked

    @property
    def root(self) -> Path:
        return self.baked.path / "deploy" / "k8s"

    def kustomizations(self) -> list[str]:
        """Every Kustomization (not Component) under deploy/k8s, relative."""
        found = []
        for path in sorted(self.root.rglob("kustomization.yaml")):
            if yaml.safe_load(path.read_text())["kind"] == "Kustomization":
                found.append(path.parent.relative_to(self.root).as_posix())
        return found

    def render(self, rel: str) -> list[dict[str, Any]]:
        return [doc for doc in yaml.safe_load_all(_render(str(self.root / rel))) if doc]

    @cached_property
    def compose(self) -> dict[str, Any]:
        return yaml.safe_load(self.baked.read("compose.yaml"))

    @cached_property
    def compose_prod(self) -> dict[str, Any]:
        return yaml.safe_load(self.baked.read("compose.prod.yaml"))

    @cached_property
    def env_example(self) -> dict[str, str]:
        pairs = (line.split("=", 1) for line in self.baked.read(".env.example").splitlines())
        return {p[0].strip(): p[1].strip() for p in pairs if len(p) == 2 and p[0][:1] != "#"}

    def compose_value(self, value: str) -> str:
        """A compose.yaml value with ${VAR}, ${VAR:-default} and ${VAR:?msg} resolved by
        .env.example (what the generator writes to .env) or the default."""

        def one(match: re.Match[str]) -> str:
            name, op, rest = match.group(1), match.group(2) or "", match.group(3) or ""
            if name in self.env_example:
                return self.env_example[name]
            return rest if op == ":-" else ""

        return re.sub(r"\$\{([A-Z_][A-Z0-9_]*)(:[-?])?([^}]*)\}", one, str(value))


@functools.cache
def _render(path: str) -> str:
    """kubectl kustomize's output, once per kustomization and session (the costly part). Default
    load restrictions: a kustomization reads no file outside its own folder."""
    assert KUBECTL, "kubectl is not installed (CI installs kubectl with kustomize built in)"
    result = subprocess.run(
        [KUBECTL, "kustomize", str(path)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, f"kubectl kustomize {path}: {result.stderr}"
    return result.stdout


@pytest.fixture(scope="module", params=list(COMBINATIONS), ids=list(COMBINATIONS))
def project(request: pytest.FixtureRequest, bake_session: Callable[..., Baked]) -> Project:
    return _with_object_store_keys(bake_session(**COMBINATIONS[request.param]))


@pytest.fixture(scope="module")
def default_project(bake_session: Callable[..., Baked]) -> Project:
    return _with_object_store_keys(bake_session())


def _with_object_store_keys(baked: Baked) -> Project:
    for name in OBJECT_STORE_FILES:
        path = baked.path / "secrets" / name
        if not path.exists():
            path.write_text(secrets.token_urlsafe(24))
    return Project(baked)


def pod_spec(doc: dict[str, Any]) -> dict[str, Any] | None:
    if doc["kind"] in ("Deployment", "StatefulSet", "Job"):
        return dict(doc["spec"]["template"]["spec"])
    if doc["kind"] == "InferenceService":
        return dict(doc["spec"]["predictor"])
    return None


def workloads(docs: list[dict[str, Any]]) -> Iterator[tuple[dict[str, Any], dict[str, Any]]]:
    for doc in docs:
        spec = pod_spec(doc)
        if spec is not None:
            yield doc, spec


def container_env(container: dict[str, Any], docs: list[dict[str, Any]]) -> dict[str, str]:
    """The environment Kubernetes gives the container: envFrom ConfigMaps, then env, with
    $(VAR) references expanded as the kubelet does."""
    maps = {d["metadata"]["name"]: d.get("data", {}) for d in docs if d["kind"] == "ConfigMap"}
    env: dict[str, str] = {}
    for source in container.get("envFrom", []):
        env.update(maps[source["configMapRef"]["name"]])
    for item in container.get("env", []):
        if "value" in item:
            env[item["name"]] = re.sub(
                r"\$\(([A-Za-z_][A-Za-z0-9_]*)\)",
                lambda m: env.get(m.group(1), m.group(0)),
                item["value"],
            )
        else:
            ref = item["valueFrom"]["configMapKeyRef"]
            env[item["name"]] = maps[ref["name"]][ref["key"]]
    return env


def mounted_secret_files(spec: dict[str, Any], mount: str = "/run/secrets") -> set[str]:
    files: set[str] = set()
    names = {
        m["name"]
        for c in spec["containers"]
        for m in c.get("volumeMounts", [])
        if m["mountPath"] == mount
    }
    for volume in spec.get("volumes", []):
        if volume["name"] in names:
            for source in volume["projected"]["sources"]:
                files |= {item["path"] for item in source["secret"]["items"]}
    return files


# --- rendering, schemas, policy -------------------------------------------------------------


def test_every_kustomization_renders_and_validates_strictly(project: Project) -> None:
    kustomizations = project.kustomizations()
    assert {"base", "overlays/dev", "overlays/prod", "overlays/prod-kserve"} <= set(kustomizations)
    assert {
        f"jobs/{o}/{j}" for o in ("dev", "prod") for j in ("train", "train-gpu", "tune")
    } <= set(kustomizations)
    for rel in kustomizations:
        docs = project.render(rel)
        assert docs, rel
        for doc in docs:
            if doc["kind"] == "InferenceService":
                _validate_inference_service(doc)
                continue
            if doc["kind"] == "ExternalSecret":
                assert doc["apiVersion"] == "external-secrets.io/v1"
                assert kserve_crd.errors(doc, kserve_crd.EXTERNAL_SECRET) == [], rel
                continue
            try:
                kubernetes_validate.validate(doc, K8S_VERSION, strict=True)
            except kubernetes_validate.ValidationError as exc:
                pytest.fail(f"{rel}: {doc['kind']}/{doc['metadata']['name']}: {exc.message}")


# KServe's ComponentExtensionSpec: what an InferenceService predictor adds to a PodSpec.
KSERVE_PREDICTOR_FIELDS = {
    "minReplicas", "maxReplicas", "scaleTarget", "scaleMetric", "containerConcurrency",
    "timeout", "canaryTrafficPercent", "logger", "batcher", "labels", "annotations",
    "deploymentStrategy",
}  # fmt: skip


def _validate_inference_service(doc: dict[str, Any]) -> None:
    """Against KServe's own CRD schema (vendored in tests/schemas: no package ships it), with
    unknown fields refused; and the predictor, a PodSpec plus KServe's extension fields,
    against the Kubernetes release's PodSpec schema, which the CRD copies at its own version."""
    assert doc["apiVersion"] == "serving.kserve.io/v1beta1"
    assert kserve_crd.errors(doc) == []
    predictor = dict(doc["spec"]["predictor"])
    extension = {k: predictor.pop(k) for k in list(predictor) if k in KSERVE_PREDICTOR_FIELDS}
    pod = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "predictor"}, "spec": predictor}
    kubernetes_validate.validate(pod, K8S_VERSION, strict=True)
    assert extension["scaleMetric"] == "cpu" and isinstance(extension["scaleTarget"], int)
    assert doc["metadata"]["annotations"]["serving.kserve.io/deploymentMode"] == "RawDeployment"


def test_the_kserve_schema_refuses_what_the_api_server_would(default_project: Project) -> None:
    (doc,) = (
        d for d in default_project.render("overlays/prod-kserve") if d["kind"] == "InferenceService"
    )
    assert kserve_crd.errors(doc) == []
    misspelt = json.loads(json.dumps(doc))
    misspelt["spec"]["predictor"]["minReplica"] = misspelt["spec"]["predictor"].pop("minReplicas")
    assert any("'minReplica' was unexpected" in e for e in kserve_crd.errors(misspelt))
    wrong_type = json.loads(json.dumps(doc))
    wrong_type["spec"]["predictor"]["containers"][0]["ports"][0]["containerPort"] = "http"
    assert any("containerPort" in e for e in kserve_crd.errors(wrong_type))


def test_checkov_passes_with_justified_skips(project: Project, tmp_path: Path) -> None:
    assert CHECKOV.exists(), "checkov is a dev dependency of the template (uv sync)"
    for rel in project.kustomizations():
        if rel == "base":
            continue  # no namespace of its own: the overlays are what gets applied
        docs = project.render(rel)
        (tmp_path / (rel.replace("/", "-") + ".yaml")).write_text(yaml.safe_dump_all(docs))
    config = project.root / ".checkov.yaml"
    # Every project-wide skip carries a comment saying why, right above it.
    lines = config.read_text().splitlines()
    for number, line in enumerate(lines):
        if re.match(r"\s+- CKV", line):
            assert lines[number - 1].strip().startswith("#"), f"unexplained skip: {line}"
    result = subprocess.run(
        [str(CHECKOV), "-d", str(tmp_path), "--config-file", str(config), "--quiet",
         "--compact", "--skip-download", "-o", "json"],
        capture_output=True, text=True, check=False, timeout=600,
    )  # fmt: skip
    report = json.loads(result.stdout)
    failed = [(c["check_id"], c["resource"]) for c in report["results"].get("failed_checks", [])]
    assert failed == [], failed
    assert result.returncode == 0, result.stderr[-2000:]
    assert report["summary"]["passed"] > 0
    # Skips of single resources are annotations whose value says why.
    for path in project.root.rglob("*.yaml"):
        for match in re.finditer(r"checkov\.io/skip\d+: (\S+)", path.read_text()):
            check, _, reason = match.group(1).partition("=")
            assert check.startswith("CKV") and reason, f"{path}: skip without a reason"


# --- consistency with compose.yaml, the Dockerfile and Settings -----------------------------


def _settings_fields(project: Project) -> set[str]:
    # The package's settings module and its relative imports, without the package's __init__
    # (which imports the application): a bare package object over its directory.
    name = f"_k8s_package_{id(project)}"
    package = types.ModuleType(name)
    package.__path__ = [str(project.baked.path / "src" / project.baked.package)]
    sys.modules[name] = package
    module = importlib.import_module(f"{name}.settings")
    return {field.upper() for field in module.Settings.model_fields}


def _script_variables(project: Project) -> set[str]:
    text = "".join(p.read_text() for p in (project.baked.path / "docker").rglob("*.sh"))
    return set(re.findall(r"\$\{?([A-Z][A-Z0-9_]+)", text))


def _all_docs(project: Project) -> list[dict[str, Any]]:
    docs: list[dict[str, Any]] = []
    for rel in ("jobs/dev/train", "jobs/dev/tune", "jobs/prod/train-gpu", "overlays/prod"):
        docs += project.render(rel)
    return docs


def test_environment_names_are_those_of_compose_and_settings(project: Project) -> None:
    fields = _settings_fields(project)
    compose_env = {
        name for service in project.compose["services"].values()
        for name in service.get("environment", {})
    }  # fmt: skip
    known = (
        fields
        | {f"{name}_FILE" for name in fields | {"POSTGRES_PASSWORD"}}
        | compose_env
        | set(re.findall(r"\$\{([A-Z][A-Z0-9_]*)", project.baked.read("compose.yaml")))
        | _script_variables(project)
        | set(LIBRARY_ENV)
    )
    docs = _all_docs(project) + project.render("overlays/dev")
    referenced = set()
    for _doc, spec in workloads(docs):
        for container in spec["containers"]:
            referenced |= set(re.findall(r"\$\(([A-Z_][A-Z0-9_]*)\)", json.dumps(container)))
    unknown = {}
    for doc, spec in workloads(docs):
        for container in spec["containers"]:
            for name in container_env(container, docs):
                if name not in known | referenced:
                    unknown[name] = doc["metadata"]["name"]
    assert unknown == {}, "names no consumer reads (typo, or a setting that does not exist)"


def test_each_workload_gets_its_compose_service_environment(project: Project) -> None:
    """Every variable Compose sets for a service is set for its Kubernetes counterpart, with the
    same value once the dev overlay's in-cluster `db` is the host (DATABASE_URL and all)."""
    docs = project.render("jobs/dev/train") + [
        d for d in project.render("jobs/dev/tune") if d["kind"] == "Job"
    ]
    seen = set()
    for doc, spec in workloads(docs):
        name = doc["metadata"]["name"]
        service = project.compose["services"].get(COMPOSE_SERVICE[name], {})
        env = container_env(spec["containers"][0], docs)
        for key, value in (service.get("environment") or {}).items():
            if name in DATABASE_IDENTITY:
                if key in DATABASE_IDENTITY[name]:
                    assert env[key] == project.compose_value(value), f"{name}: {key}"
                continue
            assert key in env, f"{name}: {key} of compose service {COMPOSE_SERVICE[name]} missing"
            if name == COMPOSE_SERVICE[name] and key != "DVC_REMOTE_URL":
                assert env[key] == project.compose_value(value), f"{name}: {key}"
        seen.add(COMPOSE_SERVICE[name])
    expected = {"serving", "mlflow", "db", "training", "tuner"}
    expected |= {"redis"} if project.baked.context["use_redis_cache"] else set()
    expected |= {"migrate"} if project.baked.context["use_prediction_logging"] else set()
    assert seen == expected
    assert set(project.compose["services"]) - seen <= {
        "training-gpu", "prometheus", "grafana"
    }, "a Compose service without a Kubernetes counterpart"  # fmt: skip


def _healthcheck(service: dict[str, Any]) -> tuple[int, str]:
    url = re.search(
        r"http://127\.0\.0\.1:(\d+)(/[\w/-]*)", " ".join(service["healthcheck"]["test"])
    )
    assert url, service["healthcheck"]
    return int(url.group(1)), url.group(2)


def _seconds(text: str) -> int:
    match = re.fullmatch(r"(\d+)s", str(text))
    assert match, text
    return int(match.group(1))


def _exposed(project: Project, target: str) -> int:
    stage = project.baked.read("docker/Dockerfile").split(f" AS {target}\n", 1)[1]
    exposed = re.search(r"^EXPOSE (\d+)$", stage.split("\nFROM ", 1)[0], re.M)
    assert exposed, f"no EXPOSE in the {target} stage"
    return int(exposed.group(1))


def test_ports_and_probes_are_those_of_compose_and_the_images(project: Project) -> None:
    docs = project.render("overlays/dev")
    routes = project.baked.path / "src" / project.baked.package / "serving" / "routes"
    get_routes = {
        route for path in routes.rglob("*.py")
        for route in re.findall(r'@router\.get\("([^"]+)"', path.read_text())
    }  # fmt: skip
    services = {d["metadata"]["name"]: d for d in docs if d["kind"] == "Service"}
    for name, target in (("serving", "serve"), ("mlflow", "mlflow")):
        compose = project.compose["services"][name]
        port, health = _healthcheck(compose)
        assert port == _exposed(project, target)
        deployment = next(
            d for d in docs if d["kind"] == "Deployment" and d["metadata"]["name"] == name
        )
        container = deployment["spec"]["template"]["spec"]["containers"][0]
        assert [p["containerPort"] for p in container["ports"]] == [port]
        assert [p["port"] for p in services[name]["spec"]["ports"]] == [port]
        assert container["livenessProbe"]["httpGet"]["path"] == health
        assert container["startupProbe"]["httpGet"]["path"] == health
        startup = container["startupProbe"]
        # The startup budget covers Compose's start_period (the model load).
        budget = startup["periodSeconds"] * startup["failureThreshold"]
        assert budget >= _seconds(compose["healthcheck"]["start_period"])
        if name == "serving":
            assert {health, container["readinessProbe"]["httpGet"]["path"]} <= get_routes
            assert container["readinessProbe"]["httpGet"]["path"] != health
            # MLFLOW_TRACKING_URI points at the mlflow Service's port.
            env = container_env(container, docs)
            assert (
                env["MLFLOW_TRACKING_URI"]
                == f"http://mlflow:{_healthcheck(project.compose['services']['mlflow'])[0]}"
            )


def _image_name(image: str) -> str:
    """Image without registry and tag: registry.example.com/x-serve:0.1.0 -> x-serve."""
    return image.rsplit("/", 1)[-1].split(":", 1)[0]


def test_images_are_the_compose_images(project: Project) -> None:
    compute = {"COMPUTE": "cpu"}

    def compose_image(service: str) -> str:
        image = project.compose["services"][service]["image"]
        image = re.sub(r"\$\{COMPUTE:-(\w+)\}", lambda m: compute.get("COMPUTE", m.group(1)), image)
        return _image_name(image)

    checked = set()
    for rel in ("jobs/dev/train", "jobs/prod/tune", "overlays/prod-kserve"):
        for doc, spec in workloads(project.render(rel)):
            name = doc["metadata"]["name"]
            service = "serving" if doc["kind"] == "InferenceService" else COMPOSE_SERVICE[name]
            assert _image_name(spec["containers"][0]["image"]) == compose_image(service), name
            checked.add(service)
    gpu = next(
        d for d in project.render("jobs/prod/train-gpu") if d["metadata"]["name"] == "training"
    )
    container = gpu["spec"]["template"]["spec"]["containers"][0]
    assert _image_name(container["image"]) == compose_image("training-gpu")
    assert container["image"].startswith("registry.example.com/")
    assert "serving" in checked and "training" in checked


def test_secrets_are_the_compose_secrets_as_files(project: Project) -> None:
    docs = project.render("jobs/dev/train") + project.render("jobs/dev/tune")
    object_store = {"aws_access_key_id", "aws_secret_access_key"}
    for doc, spec in workloads(docs):
        name = doc["metadata"]["name"]
        compose = project.compose["services"][COMPOSE_SERVICE[name]].get("secrets", [])
        files = mounted_secret_files(spec)
        if name in DATABASE_IDENTITY:
            environment = project.compose["services"][COMPOSE_SERVICE[name]]["environment"]
            compose = [Path(environment["POSTGRES_PASSWORD_FILE"]).name]
        # Compose keeps artifacts on a volume: the object-store keys are all Kubernetes adds.
        assert set(compose) <= files and files - set(compose) <= object_store, name
        for container in spec["containers"]:
            assert "secretKeyRef" not in json.dumps(container), "secrets as files, not env"
            for key, value in container_env(container, docs).items():
                if key.endswith("_FILE"):
                    assert value.startswith("/run/secrets/") and value.rsplit("/", 1)[1] in files
    # No Secret in any manifest: `make k8s-secrets` makes them from the files compose.yaml
    # mounts (dev), the External Secrets Operator from a secret manager (prod).
    for path in project.root.rglob("*.yaml"):
        text = path.read_text()
        kinds = {(doc or {}).get("kind") for doc in yaml.safe_load_all(text)}
        assert "Secret" not in kinds, f"{path}: a Secret written out in YAML"
        assert "secretGenerator" not in text, f"{path}: a kustomization reading secret files"
    made = {d["metadata"]["name"]: d for d in _file_secrets(project, "dev")}
    compose_files = {name: s["file"] for name, s in project.compose["secrets"].items()}
    keys = {key for secret in made.values() for key in secret["data"]}
    counterparts = set(COMPOSE_SERVICE.values())
    used = {
        s for name, service in project.compose["services"].items() if name in counterparts
        for s in service.get("secrets", [])
    }  # fmt: skip
    assert used <= keys, "a Compose secret without its Kubernetes Secret"
    assert keys - set(compose_files) <= set(OBJECT_STORE_FILES)
    for secret in made.values():
        for key, value in secret["data"].items():
            source = project.baked.path / compose_files.get(key, f"secrets/{key}")
            assert base64.b64decode(value).decode() == source.read_text(), key
    # Every Secret a dev workload mounts is made, in the overlay's namespace.
    dev = [d for rel in DEV_KUSTOMIZATIONS for d in project.render(rel)]
    namespace = {d["metadata"]["namespace"] for d in dev if d["kind"] == "Deployment"}
    assert {d["metadata"]["namespace"] for d in made.values()} == namespace
    for _doc, spec in workloads(dev):
        for name, items in mounted_secrets(spec).items():
            assert name in made and items <= set(made[name]["data"]), name


DEV_KUSTOMIZATIONS = ("overlays/dev", "jobs/dev/train", "jobs/dev/tune")
PROD_KUSTOMIZATIONS = ("overlays/prod", "overlays/prod-kserve", "jobs/prod/train", "jobs/prod/tune")


@functools.cache
def _file_secrets_text(path: Path, overlay: str) -> str:
    done = subprocess.run(
        ["make", "--no-print-directory", "k8s-secrets-render", f"OVERLAY={overlay}"],
        cwd=path, capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    return done.stdout


def _file_secrets(project: Project, overlay: str) -> list[dict[str, Any]]:
    """The Secrets `make k8s-secrets` applies, as it renders them from ./secrets/."""
    text = _file_secrets_text(project.baked.path, overlay)
    return [d for d in yaml.safe_load_all(text) if d]


def mounted_secrets(spec: dict[str, Any]) -> dict[str, set[str]]:
    """Secret name -> the keys a pod mounts from it."""
    found: dict[str, set[str]] = {}
    for volume in spec.get("volumes", []):
        for source in volume.get("projected", {}).get("sources", []):
            if "secret" in source:
                items = {item["key"] for item in source["secret"]["items"]}
                found.setdefault(source["secret"]["name"], set()).update(items)
    return found


def test_production_secrets_come_from_external_secrets(project: Project) -> None:
    """One ExternalSecret per Secret a production workload mounts (overlay and Jobs), with the
    keys it mounts, valid against ESO's CRD schema; the same names `make k8s-secrets` makes."""
    for rel in PROD_KUSTOMIZATIONS:
        docs = project.render(rel)
        external = {d["metadata"]["name"]: d for d in docs if d["kind"] == "ExternalSecret"}
        mounted: dict[str, set[str]] = {}
        for _doc, spec in workloads(docs):
            for name, items in mounted_secrets(spec).items():
                mounted.setdefault(name, set()).update(items)
        assert mounted, rel
        for name, items in mounted.items():
            assert name in external, f"{rel}: Secret {name} has no ExternalSecret"
            spec = external[name]["spec"]
            assert spec["target"]["name"] == name
            assert {item["secretKey"] for item in spec["data"]} >= items, name
            for item in spec["data"]:
                assert (
                    item["remoteRef"]["key"]
                    == f"{project.baked.context['project_slug']}/{item['secretKey']}"
                )
        assert set(external) <= set(mounted) | {
            n for r in PROD_KUSTOMIZATIONS for _d, sp in workloads(project.render(r))
            for n in mounted_secrets(sp)
        }, "an ExternalSecret nothing mounts"  # fmt: skip
        assert not [d for d in docs if d["kind"] == "Secret"]
    made = {d["metadata"]["name"] for d in _file_secrets(project, "prod")}
    external = {d["metadata"]["name"] for d in project.render("overlays/prod")
                if d["kind"] == "ExternalSecret"}  # fmt: skip
    assert external <= made and made - external == {"postgres-password"}


def test_the_external_secret_schema_refuses_what_the_api_server_would(
    default_project: Project,
) -> None:
    doc = next(d for d in default_project.render("overlays/prod") if d["kind"] == "ExternalSecret")
    schema = kserve_crd.EXTERNAL_SECRET
    assert kserve_crd.errors(doc, schema) == []
    misspelt = json.loads(json.dumps(doc))
    misspelt["spec"]["secretStoreRef"]["kind"] = "SecretsStore"
    assert any("secretStoreRef.kind" in e for e in kserve_crd.errors(misspelt, schema))
    unknown = json.loads(json.dumps(doc))
    unknown["spec"]["data"][0]["remoteRef"]["name"] = "x"
    assert any("'name' was unexpected" in e for e in kserve_crd.errors(unknown, schema))


# Workloads whose network labels differ from their Compose service's networks, and why.
NETWORK_EXCEPTIONS = {
    # Compose keeps artifacts on a volume; on Kubernetes MLflow reaches the object store.
    "mlflow": {"frontend"},
}
# Compose networks that only carry published ports: a Service does that on Kubernetes.
PUBLISHING_ONLY = {"published"}
METADATA = ("169.254.169.254", "fd00:ec2::254")


def _selects(policy: dict[str, Any], labels: dict[str, str]) -> bool:
    wanted = policy["podSelector"].get("matchLabels", {})
    return wanted.items() <= labels.items()


def _reaches_metadata(rule: dict[str, Any]) -> bool:
    """Whether an egress rule lets a pod reach the cloud metadata address."""
    if "to" not in rule:
        return True  # {} or ports only: every address
    for peer in rule["to"]:
        block = peer.get("ipBlock")
        if block is None:
            continue
        network = ipaddress.ip_network(block["cidr"])
        for address in METADATA:
            inside = ipaddress.ip_address(address)
            if inside.version != network.version or inside not in network:
                continue
            if not any(inside in ipaddress.ip_network(e) for e in block.get("except", [])):
                return True
    return False


def test_network_labels_mirror_compose_networks(project: Project) -> None:
    docs = project.render("jobs/dev/train") + project.render("jobs/dev/tune")
    for doc, _spec in workloads(docs):
        name = doc["metadata"]["name"]
        labels = doc["spec"]["template"]["metadata"]["labels"]
        networks = {
            k.split("/", 1)[1]
            for k, v in labels.items()
            if k.startswith("compose-network/") and v == "true"
        }
        if name == "mlflow-db-upgrade":
            # Not a Compose service: a client of the database only.
            assert networks == {"backend"}
            continue
        service = project.compose["services"][COMPOSE_SERVICE[name]]
        expected = set(service["networks"]) - PUBLISHING_ONLY | NETWORK_EXCEPTIONS.get(name, set())
        assert networks == expected, name
    internal = {
        n for n, spec in project.compose["networks"].items() if (spec or {}).get("internal")
    }
    policies = {d["metadata"]["name"]: d["spec"] for d in docs if d["kind"] == "NetworkPolicy"}
    assert policies["default-deny"] == {"podSelector": {}, "policyTypes": ["Ingress", "Egress"]}
    for network in internal:
        # An internal network: its pods reach only each other.
        egress = policies[network]["egress"]
        assert egress == [
            {"to": [{"podSelector": {"matchLabels": {f"compose-network/{network}": "true"}}}]}
        ]
    for network in set(project.compose["networks"]) - internal - PUBLISHING_ONLY:
        # The way out reaches any address but the cloud metadata service's.
        assert policies[network]["egress"] and not any(
            _reaches_metadata(rule) for rule in policies[network]["egress"]
        ), network
    # From outside, only the serving port (the port every Compose file publishes for serving).
    opened = [
        p for p in policies.values() if any("from" not in rule for rule in p.get("ingress", []))
    ]
    assert opened == [policies["serving"]]
    assert policies["serving"]["ingress"] == [{"ports": [{"protocol": "TCP", "port": 8000}]}]


def test_serving_egress_reaches_only_its_dependencies(project: Project) -> None:
    """The serving pods (Deployment or KServe predictor) may send to the stack's backend pods,
    DNS and, in prod, the database port: nothing else, cloud metadata included."""
    for rel in ("overlays/dev", "overlays/prod", "overlays/prod-kserve"):
        docs = project.render(rel)
        policies = [d["spec"] for d in docs if d["kind"] == "NetworkPolicy"]
        (labels,) = [
            d["spec"]["template"]["metadata"]["labels"] if d["kind"] == "Deployment"
            else d["spec"]["predictor"]["labels"]
            for d in docs
            if d["metadata"]["name"] == "serving"
            and d["kind"] in ("Deployment", "InferenceService")
        ]  # fmt: skip
        rules = [
            rule for p in policies if "Egress" in p["policyTypes"] and _selects(p, labels)
            for rule in p.get("egress", [])
        ]  # fmt: skip
        assert rules, rel
        for rule in rules:
            assert not _reaches_metadata(rule) or rule.get("ports") == [
                {"protocol": "TCP", "port": 5432}
            ], (rel, rule)
            for peer in rule.get("to", []):
                assert "ipBlock" not in peer, (rel, rule)


def _quantity(compose: str) -> str:
    """Compose's memory (768m, 2g) as a Kubernetes quantity (768Mi, 2Gi)."""
    memory = re.fullmatch(r"(\d+)([mg])", compose)
    assert memory, compose
    return memory.group(1) + {"m": "Mi", "g": "Gi"}[memory.group(2)]


def test_resources_follow_compose_limits(project: Project) -> None:
    docs = _all_docs(project) + project.render("overlays/dev")
    checked = set()
    for doc, spec in workloads(docs):
        name = doc["metadata"]["name"]
        if COMPOSE_SERVICE.get(name) != name:
            continue  # a helper Job of a service (db upgrade, study creation): its own sizing
        limits = project.compose["services"][name]["deploy"]["resources"]["limits"]
        container = spec["containers"][0]
        memory = _quantity(project.compose_value(limits["memory"]))
        assert container["resources"]["limits"]["memory"] == memory, name
        cpus = float(project.compose_value(limits["cpus"]))
        assert _cpu(container["resources"]["limits"]["cpu"]) == cpus, name
        checked.add(name)
    assert {"serving", "mlflow", "db", "training", "tuner"} <= checked


def _cpu(quantity: str | int) -> float:
    text = str(quantity)
    return int(text[:-1]) / 1000 if text.endswith("m") else float(text)


def test_config_files_are_the_compose_configs(project: Project) -> None:
    """The files Compose mounts as configs (MLflow's basic-auth ini, the Postgres init script,
    Redis's start script) reach the same paths in the counterpart pods, with the same text."""
    docs = project.render("overlays/dev")
    maps = {d["metadata"]["name"]: d["data"] for d in docs if d["kind"] == "ConfigMap"}
    checked = set()
    for doc, spec in workloads(docs):
        name = doc["metadata"]["name"]
        if COMPOSE_SERVICE.get(name) != name:
            continue
        volumes = {v["name"]: v for v in spec.get("volumes", [])}
        mounts = spec["containers"][0].get("volumeMounts", [])
        for config in project.compose["services"][name].get("configs", []):
            target = Path(config["target"])
            text = project.baked.read(project.compose["configs"][config["source"]]["file"])
            found = None
            for mount in mounts:
                volume = volumes.get(mount["name"], {})  # else a volumeClaimTemplate
                if "configMap" not in volume:
                    continue
                if mount["mountPath"] == str(target):
                    found = maps[volume["configMap"]["name"]][mount["subPath"]]
                elif Path(mount["mountPath"]) == target.parent:
                    found = maps[volume["configMap"]["name"]].get(target.name)
            container = spec["containers"][0]
            entrypoint = project.compose["services"][name].get("entrypoint", [])
            if found is None and str(target) in entrypoint:
                # A script Compose runs as the entrypoint: the pod runs it from its ConfigMap
                # folder (mounting at its Compose path would hide the image's other binaries).
                ran = Path(container["command"][entrypoint.index(str(target))])
                assert container["command"] == [
                    str(ran) if part == str(target) else part for part in entrypoint
                ], name
                for mount in mounts:
                    volume = volumes.get(mount["name"], {})
                    if "configMap" in volume and Path(mount["mountPath"]) == ran.parent:
                        found = maps[volume["configMap"]["name"]].get(ran.name)
            assert found == text, f"{name}: {target} is not {config['source']}"
            checked.add(config["source"])
    assert {"postgres-init", "mlflow-auth"} <= checked
    assert ("redis-start" in checked) == project.baked.context["use_redis_cache"]


# --- overlays, Jobs and components ----------------------------------------------------------


def _by(docs: list[dict[str, Any]], kind: str, name: str) -> dict[str, Any]:
    return next(d for d in docs if d["kind"] == kind and d["metadata"]["name"] == name)


def test_dev_and_prod_overlays(project: Project) -> None:
    dev, prod = project.render("overlays/dev"), project.render("overlays/prod")
    hpa_dev, hpa_prod = (
        _by(dev, "HorizontalPodAutoscaler", "serving"),
        _by(prod, "HorizontalPodAutoscaler", "serving"),
    )
    assert (hpa_dev["spec"]["minReplicas"], hpa_dev["spec"]["maxReplicas"]) == (1, 1)
    assert hpa_prod["spec"]["minReplicas"] >= 3 and hpa_prod["spec"]["maxReplicas"] > 3
    assert "replicas" not in _by(prod, "Deployment", "serving")["spec"], "the HPA owns the count"
    assert _by(prod, "PodDisruptionBudget", "serving")
    assert (
        _by(prod, "Ingress", "serving")["spec"]["rules"][0]["http"]["paths"][0]["backend"][
            "service"
        ]["name"]
        == "serving"
    )
    # dev: Postgres in the cluster, as the Compose `db`; prod: no database of its own.
    db = _by(dev, "StatefulSet", "db")
    compose_db = project.compose["services"]["db"]
    assert db["spec"]["template"]["spec"]["containers"][0]["image"] == compose_db["image"]
    assert not [d for d in prod if d["kind"] == "StatefulSet"]
    init = next(
        d
        for d in dev
        if d["kind"] == "ConfigMap" and d["metadata"]["name"].startswith("postgres-init-")
    )
    assert list(init["data"].values()) == [
        project.baked.read("docker/postgres/create-databases.sh")
    ]
    settings = {
        o: next(
            d
            for d in docs
            if d["kind"] == "ConfigMap" and d["metadata"]["name"].startswith("settings-")
        )["data"]
        for o, docs in (("dev", dev), ("prod", prod))
    }
    assert settings["dev"]["POSTGRES_HOST"] == "db" and settings["prod"]["POSTGRES_HOST"] != "db"
    assert settings["dev"]["MLFLOW_S3_ENDPOINT_URL"].startswith("http")
    for data in settings.values():
        assert re.match(r"(s3|gs|wasbs)://", data["MLFLOW_ARTIFACTS_DESTINATION"])
        assert ("REDIS_URL" in data) == project.baked.context["use_redis_cache"]
        if project.baked.context["dvc_remote"] == "s3":
            assert data["DVC_REMOTE_URL"].startswith("s3://")
        else:
            assert data["DVC_REMOTE_URL"] == ""
    namespaces = {d["metadata"].get("namespace") for d in dev} | {
        d["metadata"].get("namespace") for d in prod
    }
    assert None not in namespaces and len(namespaces) == 2
    # What compose.prod.yaml adds to a service's environment (PRODUCTION, MLFLOW_WORKERS), prod
    # adds too; dev does not.
    for name in ("serving", "mlflow"):
        added = project.compose_prod["services"][name].get("environment", {})
        assert added, name
        prod_env = container_env(
            _by(prod, "Deployment", name)["spec"]["template"]["spec"]["containers"][0], prod
        )
        dev_env = container_env(
            _by(dev, "Deployment", name)["spec"]["template"]["spec"]["containers"][0], dev
        )
        for key, value in added.items():
            assert prod_env.get(key) == project.compose_value(value), f"{name}: {key}"
            assert dev_env.get(key) != prod_env[key], f"{name}: {key} in dev"
    mlflow = _by(prod, "Deployment", "mlflow")["spec"]["template"]["spec"]["containers"][0]
    assert mlflow["args"] == ["--artifacts-destination", "$(MLFLOW_ARTIFACTS_DESTINATION)"]
    schema_jobs = {d["metadata"]["name"] for d in prod if d["kind"] == "Job"}
    assert schema_jobs == {"mlflow-db-upgrade"} | (
        {"migrate"} if project.baked.context["use_prediction_logging"] else set()
    )
    monitoring = project.baked.context["monitoring"] == "prometheus-grafana"
    annotations = _by(prod, "Deployment", "serving")["spec"]["template"]["metadata"].get(
        "annotations", {}
    )
    assert (annotations.get("prometheus.io/scrape") == "true") == monitoring
    if monitoring:
        assert annotations["prometheus.io/port"] == str(
            _healthcheck(project.compose["services"]["serving"])[0]
        )


def _routed(ingresses: list[dict[str, Any]], path: str) -> list[str]:
    """The Ingresses whose rules route a request path (Exact, or Prefix by path elements)."""
    found = []
    for ingress in ingresses:
        for rule in ingress["spec"]["rules"]:
            for entry in rule["http"]["paths"]:
                prefix = entry["path"].rstrip("/")
                exact = entry["pathType"] == "Exact" and path == entry["path"]
                under = path == prefix or path.startswith(prefix + "/")
                if exact or (entry["pathType"] == "Prefix" and under):
                    found.append(ingress["metadata"]["name"])
    return found


def test_prod_ingress_has_the_compose_edge_protections(project: Project) -> None:
    """Only the scoring routes (read from the app, each rate-limited with the Compose edge's
    numbers) and the health routes are routed; /admin/* and /metrics are not."""
    conf = project.baked.read("nginx/serving.conf")
    rate = int(re.search(r"zone=scoring:\S+ rate=(\d+)r/s", conf).group(1))  # type: ignore[union-attr]
    burst = int(re.search(r"limit_req zone=scoring burst=(\d+)", conf).group(1))  # type: ignore[union-attr]
    baked = project.baked
    scoring = scoring_routes(baked.path, baked.package)
    assert scoring, "no scoring route found in the app"
    for rel in ("overlays/prod", "overlays/prod-kserve"):
        ingresses = [d for d in project.render(rel) if d["kind"] == "Ingress"]
        limited = {
            d["metadata"]["name"] for d in ingresses
            if d["metadata"].get("annotations", {}).get("nginx.ingress.kubernetes.io/limit-rps")
        }  # fmt: skip
        for route in scoring:
            names = _routed(ingresses, concrete(route))
            assert names and set(names) <= limited, f"{rel}: {route} routed by {names}"
        for ingress in ingresses:
            notes = ingress["metadata"].get("annotations", {})
            if ingress["metadata"]["name"] in limited:
                assert int(notes["nginx.ingress.kubernetes.io/limit-rps"]) == rate
                multiplier = int(notes["nginx.ingress.kubernetes.io/limit-burst-multiplier"])
                assert rate * multiplier == burst
                assert notes["nginx.ingress.kubernetes.io/proxy-body-size"] == re.search(
                    r"client_max_body_size (\S+);", conf
                ).group(1)  # type: ignore[union-attr]
        for path in ("/admin/reload", "/admin", "/metrics", "/model", "/docs", "/"):
            assert _routed(ingresses, path) == [], f"{rel}: {path} is routed publicly"
        for path in ("/health", "/ready", "/v2/health/ready"):
            assert _routed(ingresses, path), f"{rel}: {path} not routed"
            assert not set(_routed(ingresses, path)) & limited, f"{rel}: {path} is limited"
        backends = {
            entry["backend"]["service"]["name"]
            for d in ingresses for rule in d["spec"]["rules"] for entry in rule["http"]["paths"]
        }  # fmt: skip
        assert backends == {"serving"}


def test_training_jobs_and_the_gpu_variant(project: Project) -> None:
    cpu = _by(project.render("jobs/dev/train"), "Job", "training")["spec"]["template"]["spec"]
    gpu = _by(project.render("jobs/dev/train-gpu"), "Job", "training")["spec"]["template"]["spec"]
    assert "args" not in cpu["containers"][0] and "command" not in cpu["containers"][0], (
        "the train image's entrypoint (dvc pull) and CMD (dvc repro) run, as in Compose"
    )
    assert "nvidia.com/gpu" not in cpu["containers"][0]["resources"]["limits"]
    assert gpu["containers"][0]["resources"]["limits"]["nvidia.com/gpu"] == 1
    assert gpu["nodeSelector"] and gpu["tolerations"]
    # Node selection and tolerations live in one patch file.
    holders = [p.relative_to(project.root).as_posix() for p in project.root.rglob("*.yaml")
               if re.search(r"^\s*(nodeSelector|tolerations):", p.read_text(), re.M)]  # fmt: skip
    assert holders == ["components/training-gpu/gpu.yaml"]
    assert cpu["restartPolicy"] == "Never"


def test_tuning_is_an_indexed_job_after_one_study_job(project: Project) -> None:
    docs = project.render("jobs/prod/tune")
    study, workers = _by(docs, "Job", "tuner-study"), _by(docs, "Job", "tuner")
    spec = workers["spec"]
    assert spec["completionMode"] == "Indexed"
    assert spec["parallelism"] == spec["completions"] >= 2
    assert spec["suspend"] is True, "workers wait until the study exists (make k8s-tune)"
    source = (project.root / "components" / "tune" / "tuner.yaml").read_text()
    assert not re.search(r"^\s*parallelism:", source, re.M), "the count is set once: completions"
    assert len(re.findall(r"^\s*completions:", source, re.M)) == 1
    study_args = " ".join(study["spec"]["template"]["spec"]["containers"][0]["args"])
    assert "create_study" in study_args
    worker_args = " ".join(spec["template"]["spec"]["containers"][0]["args"])
    compose_command = " ".join(project.compose["services"]["tuner"]["command"])
    assert compose_command in worker_args


def test_kserve_component_replaces_the_deployment(project: Project) -> None:
    docs = project.render("overlays/prod-kserve")
    prod = project.render("overlays/prod")
    kinds = {(d["kind"], d["metadata"]["name"]) for d in docs}
    assert ("Deployment", "serving") not in kinds and (
        "HorizontalPodAutoscaler",
        "serving",
    ) not in kinds
    assert ("Service", "serving") in kinds and ("PodDisruptionBudget", "serving") in kinds
    isvc = _by(docs, "InferenceService", "serving")
    predictor = isvc["spec"]["predictor"]
    deployment = _by(prod, "Deployment", "serving")["spec"]["template"]["spec"]
    hpa = _by(prod, "HorizontalPodAutoscaler", "serving")["spec"]
    container = dict(predictor["containers"][0])
    assert container.pop("name") == "kserve-container"
    expected = dict(deployment["containers"][0])
    expected.pop("name")
    assert container == expected, "the predictor runs exactly the serving container"
    assert predictor["volumes"] == deployment["volumes"]
    assert (predictor["minReplicas"], predictor["maxReplicas"]) == (
        hpa["minReplicas"],
        hpa["maxReplicas"],
    )
    service = _by(docs, "Service", "serving")
    assert service["spec"]["selector"].items() <= predictor["labels"].items()
    secret_names = {d["metadata"]["name"] for d in docs if d["kind"] in ("Secret", "ConfigMap")}
    referenced = set(
        re.findall(
            r'"name": "([a-z][a-z0-9-]*-[a-z0-9]{10})"',
            json.dumps(predictor),
        )
    )
    assert referenced and referenced <= secret_names, "generated names reach the predictor"


# --- Make targets -----------------------------------------------------------------------------


def test_make_targets_render_the_overlays(default_project: Project) -> None:
    baked = default_project.baked
    for overlay in ("dev", "prod", "prod-kserve"):
        made = baked.run("make", "--no-print-directory", "k8s-render", f"OVERLAY={overlay}")
        assert [d for d in yaml.safe_load_all(made.stdout) if d] == default_project.render(
            f"overlays/{overlay}"
        )
    for target in (
        "k8s-apply",
        "k8s-train",
        "k8s-train-gpu",
        "k8s-tune",
        "k8s-tune-apply",
        "k8s-delete",
    ):
        dry = baked.run("make", "-n", target, "OVERLAY=prod")
        assert "kubectl" in dry.stdout
    helped = baked.run("make", "help").stdout
    assert all(
        f"k8s-{t}" in helped
        for t in ("render", "apply", "train", "train-gpu", "tune", "tune-apply")
    )


def test_missing_secret_file_is_one_clear_error(default_project: Project, tmp_path: Path) -> None:
    copy = tmp_path / "project"
    shutil.copytree(
        default_project.baked.path, copy, ignore=shutil.ignore_patterns(".git", ".venv")
    )
    (copy / "secrets" / "aws_access_key_id").unlink()
    result = subprocess.run(
        ["make", "--no-print-directory", "k8s-secrets"],
        cwd=copy,
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode != 0
    assert "secrets/aws_access_key_id" in result.stderr
