"""The one settings object: every service URL and secret comes from the environment.

Defaults are for the host: a SQLite tracking store and local artifacts in the project root,
{% if cookiecutter.use_prediction_logging -%}
a SQLite prediction log,
{% endif -%}
a SQLite Optuna study{% if cookiecutter.use_redis_cache %} and no Redis{% endif %}. Compose sets the container
values. Each variable may instead be given as `<NAME>_FILE` (a path, e.g. a Docker secret),
which is how production passes secrets. The settings of an optional part (Redis cache,
prediction log) exist only in a project generated with it. Database URLs are normalized here
(`normalize_url`), once for every user.
"""

from __future__ import annotations

import os
from functools import lru_cache
from pathlib import Path
from typing import Any, Literal
from urllib.parse import unquote, urlsplit

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic.fields import FieldInfo
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

from .registry_names import CHAMPION
from .secret_policy import MIN_LENGTH, weakness

PACKAGE_NAME = "{{ cookiecutter.package_name }}"
PROJECT_MARKERS = ("dvc.yaml", "pyproject.toml")
# PRODUCTION=true: every secret below must pass secret_policy (no placeholder, >= 24 characters,
# not guessable: no repeats, runs or common words with digits).
# Refused even when absent: the admin routes have no other credential.
REQUIRED_SECRETS = ("admin_token",)
# Checked when given: credentials the clients read themselves (libpq: PGPASSWORD, which the
# image's entrypoint sets from POSTGRES_PASSWORD_FILE; MLflow: MLFLOW_TRACKING_PASSWORD; Redis:
# the password in REDIS_URL), declared here so that production refuses weak ones at start.
GIVEN_SECRETS = (
    "postgres_password",
    "pgpassword",
    "mlflow_tracking_password",
{%- if cookiecutter.use_redis_cache %}
    "redis_password",
    "cache_hmac_key",
{%- endif %}
)
# URLs whose password (user:password@host) is a secret too.
SECRET_BEARING_URLS = (
    "mlflow_tracking_uri",
{%- if cookiecutter.use_prediction_logging %}
    "database_url",
{%- endif %}
{%- if cookiecutter.use_redis_cache %}
    "redis_url",
{%- endif %}
    "optuna_storage",
)


def find_project_root(start: Path | None = None) -> Path:
    """PROJECT_ROOT, else the nearest folder holding the project's files, else the cwd."""
    if explicit := os.environ.get("PROJECT_ROOT"):
        return Path(explicit).resolve()
    here = (start or Path.cwd()).resolve()
    for folder in (here, *here.parents):
        if all((folder / marker).exists() for marker in PROJECT_MARKERS):
            return folder
    return here


def _sqlite(path: Path) -> str:
    return f"sqlite:///{path}"


def normalize_url(url: str) -> str:
    """`postgresql://` and `postgres://` mean psycopg 3 (the driver the project installs)."""
    for prefix in ("postgres://", "postgresql://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url.removeprefix(prefix)
    return url


class WeakSecretsError(RuntimeError):
    """PRODUCTION=true with a placeholder or short secret (not a ValueError: pydantic would wrap
    it in a ValidationError whose text repeats the input values, secrets included)."""


def _source(field_name: str) -> str:
    """The variable a setting came from: NAME, or NAME_FILE (and its path) when only that is set."""
    name = field_name.upper()
    if not os.environ.get(name) and (path := os.environ.get(f"{name}_FILE")):
        return f"{name}_FILE ({path})"
    return name


class FileEnvSource(PydanticBaseSettingsSource):
    """Reads `<NAME>_FILE` variables: the value is the content of the named file."""

    def get_field_value(self, field: FieldInfo, field_name: str) -> tuple[Any, str, bool]:
        path = os.environ.get(f"{field_name.upper()}_FILE")
        if not path:
            return None, field_name, False
        return Path(path).read_text(encoding="utf-8").strip(), field_name, False

    def __call__(self) -> dict[str, Any]:
        values: dict[str, Any] = {}
        for name, field in self.settings_cls.model_fields.items():
            value, key, _ = self.get_field_value(field, name)
            if value is not None:
                values[key] = value
        return values


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_file=".env", env_file_encoding="utf-8", extra="ignore", protected_namespaces=()
    )

    project_root: Path = Field(default_factory=find_project_root)

    # --- outward interface (see README: Configuration) ---------------------------------------
    mlflow_tracking_uri: str = ""
    model_name: str = PACKAGE_NAME
    model_alias: str = CHAMPION
{%- if cookiecutter.use_prediction_logging %}
    database_url: str = ""
{%- endif %}
{%- if cookiecutter.use_redis_cache %}
    redis_url: str | None = None
{%- endif %}
    optuna_storage: str = ""
    admin_token: SecretStr | None = None
    # compose.prod.yaml sets it: secrets must then be real (not placeholders, >= 24 characters)
    production: bool = False
    # read only to be checked in production (GIVEN_SECRETS); their clients read them directly
    postgres_password: SecretStr | None = None
    pgpassword: SecretStr | None = None
    mlflow_tracking_password: SecretStr | None = None
{%- if cookiecutter.use_redis_cache %}
    redis_password: SecretStr | None = None
{%- endif %}

    # --- training ---------------------------------------------------------------------------
    experiment_name: str = PACKAGE_NAME
    device: Literal["auto", "cpu", "cuda"] = "auto"

    # --- serving ----------------------------------------------------------------------------
    max_batch_size: int = Field(default=1000, ge=1)
    unknown_category: Literal["reject", "unknown"] = "reject"
    max_body_bytes: int = Field(default=2_000_000, ge=1024)  # also once decompressed
    # the whole request body must arrive within this, else 408 (serving/request_bodies.py)
    request_body_timeout_seconds: float = Field(default=30.0, gt=0)
    serve_workers: int = Field(default=1, ge=1)
    serve_threads_per_worker: int = Field(default=1, ge=1)  # OpenMP/BLAS/onnxruntime threads
    # single rows of concurrent requests share model calls (serving/batching.py)
    adaptive_batching: bool = True
    model_retry_initial_seconds: float = Field(default=1.0, gt=0)
    model_retry_max_seconds: float = Field(default=30.0, gt=0)
    # every worker checks where MODEL_ALIAS points this often and swaps when it moved (0: never)
    model_poll_seconds: float = Field(default=0, ge=0)
    # A version without ONNX is served through its MLflow pyfunc only when this is true. That
    # unpickles the registered artifact: whoever can register a version runs code in the
    # server. Off, such a version is not-ready with this reason (ONNX runs a graph, no code).
    trust_registry_code_execution: bool = False
    # recent requests per worker behind the drift gauges (drift/monitor.py); 0 turns them off
    drift_window_size: int = Field(default=2000, ge=0)
{%- if cookiecutter.use_redis_cache %}

    # --- Redis prediction cache (serving/cache.py) ------------------------------------------
    cache_ttl_seconds: int = Field(default=300, ge=1)
    cache_timeout_seconds: float = Field(default=0.05, gt=0)
    cache_retry_seconds: float = Field(default=2.0, ge=0)  # skip Redis this long after a failure
    # Signs every entry (HMAC) so that a Redis client cannot forge one; shared by all workers
    # and replicas, never given to Redis. Unset: each process signs with a key of its own.
    cache_hmac_key: SecretStr | None = None
{%- endif %}
{%- if cookiecutter.use_prediction_logging %}

    # --- prediction log (serving/prediction_log.py) -----------------------------------------
    prediction_logging: bool = True
    prediction_log_buffer_size: int = Field(default=100_000, ge=1)
    prediction_log_batch_size: int = Field(default=500, ge=1)
    prediction_log_flush_seconds: float = Field(default=0.5, gt=0)
    prediction_log_shutdown_seconds: float = Field(default=10.0, ge=0)
{%- endif %}

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        return (init_settings, env_settings, FileEnvSource(settings_cls), dotenv_settings)

    @field_validator({% if cookiecutter.use_prediction_logging %}"database_url", {% endif %}"optuna_storage")
    @classmethod
    def _sqlalchemy_url(cls, url: str) -> str:
        return normalize_url(url)

    @model_validator(mode="after")
    def _real_secrets_in_production(self) -> Settings:
        if self.production and (weak := self.weak_secrets()):
            raise WeakSecretsError("\n".join(weak))
        return self

    def weak_secrets(self) -> list[str]:
        """One line per weak secret: the variable it came from and the fix, never the value."""
        found: list[tuple[str, str | None]] = []
        for name in (*REQUIRED_SECRETS, *GIVEN_SECRETS):
            secret = getattr(self, name)
            if secret is None and name not in REQUIRED_SECRETS:
                continue
            found.append((_source(name), weakness(secret.get_secret_value() if secret else "")))
        for name in SECRET_BEARING_URLS:
            password = urlsplit(getattr(self, name)).password
            if password is not None:
                found.append((f"{_source(name)} (its password)", weakness(unquote(password))))
        return [
            f"{where}: {reason}; PRODUCTION=true needs a random secret of at least "
            f"{MIN_LENGTH} characters (make prod-secrets writes them to secrets/)"
            for where, reason in found
            if reason
        ]

    def model_post_init(self, context: Any, /) -> None:
        root = self.project_root
        if not self.mlflow_tracking_uri:
            self.mlflow_tracking_uri = _sqlite(root / "mlflow.db")
{%- if cookiecutter.use_prediction_logging %}
        if not self.database_url:
            self.database_url = _sqlite(root / "predictions.db")
{%- endif %}
        if not self.optuna_storage:
            self.optuna_storage = _sqlite(root / "optuna.db")

    @property
    def model_uri(self) -> str:
        return f"models:/{self.model_name}@{self.model_alias}"


@lru_cache
def get_settings() -> Settings:
    return Settings()
