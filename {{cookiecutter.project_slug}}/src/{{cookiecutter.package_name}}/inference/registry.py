"""The one registry loader: a registered version (or the version an alias points to) as a
`Predictor`. The server loads `models:/<name>@<alias>` through it, `score` the same, and
`evaluate` scores the version it evaluates through it, so evaluation measures the model as
served.

The alias is resolved to a version first, then exactly that version is downloaded, so the
version the server reports is the one it runs. The ONNX flavor runs in onnxruntime; MLflow is
used only to resolve and download (mlflow-skinny, no pandas). A version registered without
ONNX (the export failed its parity check) is refused unless TRUST_REGISTRY_CODE_EXECUTION is
set: its MLflow pyfunc is a pickle, so loading it runs code from the registry. With the opt-in
it runs where the training framework is installed (`make serve` on the host); the serve image
leaves the framework out, and says so in /ready.
"""

from __future__ import annotations

import json
import logging
import os
import tempfile
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from ..drift.profile import download_profile
from ..settings import Settings
from .predictor import (
    ModelLoadError,
    NativeScorer,
    Predictor,
    ScoreFunction,
    onnx_scorer,
)

log = logging.getLogger(__name__)
MLFLOW_CLIENT_DEFAULTS = {
    "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "0",
    "MLFLOW_HTTP_REQUEST_TIMEOUT": "10",
    "MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR": "false",
}


def _read_mlmodel(path: Path) -> dict[str, Any]:
    from mlflow.utils.yaml_utils import read_yaml

    data = read_yaml(str(path), "MLmodel")
    return data if isinstance(data, dict) else {}


def _signature(mlmodel: dict[str, Any]) -> dict[str, Any]:
    raw = mlmodel.get("signature") or {}
    return {
        key: json.loads(raw[key]) if isinstance(raw.get(key), str) else raw.get(key)
        for key in ("inputs", "outputs")
    }


def _client(settings: Settings) -> Any:
    # Fail fast: the retry loop of ModelManager retries with backoff (MLflow's own HTTP
    # retries would hold one attempt for minutes). Explicit environment values win.
    for variable, value in MLFLOW_CLIENT_DEFAULTS.items():
        os.environ.setdefault(variable, value)
    from mlflow import MlflowClient

    uri = settings.mlflow_tracking_uri
    return MlflowClient(tracking_uri=uri, registry_uri=uri)


# MLflow's basic-auth answers 403 (not 404) to a non-admin asking for a registered model that
# does not exist, so that names cannot be probed: for the serving identity both mean "nothing
# registered under this name that it may read".
NOT_REGISTERED = frozenset({"RESOURCE_DOES_NOT_EXIST", "PERMISSION_DENIED"})


def _version_by_alias(settings: Settings) -> Any:
    name, alias = settings.model_name, settings.model_alias
    try:
        return _client(settings).get_model_version_by_alias(name, alias)
    except Exception as exc:
        if getattr(exc, "error_code", None) in NOT_REGISTERED:
            raise ModelLoadError(
                f"models:/{name}@{alias} is not registered (or not readable by MLflow user "
                f"{os.environ.get('MLFLOW_TRACKING_USERNAME') or 'anonymous'}): train and "
                f"promote a model (make train), or fix MODEL_NAME / MODEL_ALIAS"
            ) from exc
        raise ModelLoadError(f"cannot resolve models:/{name}@{alias}: {exc}") from exc


def resolve_alias(settings: Settings) -> str:
    """The version `models:/<name>@<alias>` points to now: one registry call (blocking)."""
    return str(_version_by_alias(settings).version)


def load_registered_model(settings: Settings) -> Predictor:
    """Resolve `models:/<name>@<alias>` and load that version (the server's model).

    Blocking (network + disk): call it in a worker thread.
    """
    version = _version_by_alias(settings)
    predictor = load_version(
        settings, str(version.version), alias=settings.model_alias, run_id=version.run_id
    )
    if settings.drift_window_size and version.run_id:
        predictor.reference = download_profile(version.run_id, settings.mlflow_tracking_uri)
    return predictor


def load_version(
    settings: Settings,
    version: str,
    *,
    alias: str = "",
    run_id: str | None = None,
    trust_code: bool | None = None,
) -> Predictor:
    """Download `models:/<name>/<version>` and open it: an ONNX session, or the native pyfunc
    of a version registered without ONNX when code from the registry is trusted (`trust_code`,
    default: the TRUST_REGISTRY_CODE_EXECUTION setting). Blocking (network + disk)."""
    if trust_code is None:
        trust_code = settings.trust_registry_code_execution
    import mlflow

    name = settings.model_name
    uri = f"models:/{name}/{version}"
    mlflow.set_registry_uri(settings.mlflow_tracking_uri)
    with tempfile.TemporaryDirectory(prefix="model-") as tmp:
        try:
            local = Path(
                mlflow.artifacts.download_artifacts(
                    artifact_uri=uri, dst_path=tmp, tracking_uri=settings.mlflow_tracking_uri
                )
            )
        except Exception as exc:
            raise ModelLoadError(f"cannot download {uri}: {exc}") from exc
        # the scorer holds the model in memory: the download is removed on return
        mlmodel = _read_mlmodel(local)
        flavors = mlmodel.get("flavors") or {}
        onnx_flavor = flavors.get("onnx")
        score: ScoreFunction
        if onnx_flavor:
            score = onnx_scorer(
                local / onnx_flavor.get("data", "model.onnx"), settings.serve_threads_per_worker
            )
            flavor = "onnx"
        elif "python_function" in flavors:
            if not trust_code:
                raise ModelLoadError(
                    f"{uri} has no ONNX flavor (its ONNX export failed at training; see the "
                    "version's tags); its native pyfunc is a pickle, which runs code from the "
                    "registry when loaded. Fix the export and register again, or set "
                    "TRUST_REGISTRY_CODE_EXECUTION=true to trust whoever can register models."
                )
            score = _native_scorer(local, uri)
            flavor = "native"
        else:
            raise ModelLoadError(
                f"{uri} has neither an ONNX nor a pyfunc flavor (flavors: {sorted(flavors)})"
            )
    return Predictor(
        name=name,
        version=version,
        alias=alias,
        run_id=run_id,
        flavor=flavor,
        loaded_at=datetime.now(UTC),
        signature=_signature(mlmodel),
        score=score,
    )


def _native_scorer(local: Path, uri: str) -> NativeScorer:
    """The registered version has no ONNX flavor: its export failed the parity check."""
    try:
        import mlflow.pyfunc

        pyfunc = mlflow.pyfunc.load_model(str(local))
    except ImportError as exc:
        raise ModelLoadError(
            f"{uri} is the native model (its ONNX export failed at training; see the version's "
            f"tags) and this environment cannot run it ({exc}). The serve image carries no "
            "training framework: fix the export and register again, or serve from an "
            "environment with the train dependencies."
        ) from exc
    log.warning("%s has no ONNX flavor: serving the native model (much slower)", uri)
    return NativeScorer(pyfunc)
