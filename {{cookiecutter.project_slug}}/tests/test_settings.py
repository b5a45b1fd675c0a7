import os
import re
import secrets
import subprocess
import sys
from pathlib import Path

import pytest

from {{ cookiecutter.package_name }}.settings import Settings, WeakSecretsError

PROJECT_ROOT = Path(__file__).resolve().parents[1]


# Every variable a secret of the settings comes from (cleared: the machine's own stay out).
SECRET_VARIABLES = (
    "ADMIN_TOKEN",
    "POSTGRES_PASSWORD",
    "PGPASSWORD",
    "MLFLOW_TRACKING_PASSWORD",
{%- if cookiecutter.use_redis_cache %}
    "REDIS_PASSWORD",
{%- endif %}
)
RANDOM = "kR3v9-Lq0ZpX2mW7tB4nYc8sJ1uFh6Dg"  # 32 random characters: passes secret_policy


@pytest.fixture
def clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    for name in (
        "MLFLOW_TRACKING_URI",
        "DATABASE_URL",
        "OPTUNA_STORAGE",
        "REDIS_URL",
        "MODEL_ALIAS",
        "PRODUCTION",
        *SECRET_VARIABLES,
        *(f"{name}_FILE" for name in SECRET_VARIABLES),
    ):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("PROJECT_ROOT", str(tmp_path))
    monkeypatch.chdir(tmp_path)  # no .env here
    return tmp_path


def shipped_placeholders() -> set[str]:
    """The values .env.example ships for its secrets (what a copied .env would hold)."""
    lines = (PROJECT_ROOT / ".env.example").read_text(encoding="utf-8").splitlines()
    return {
        line.split("=", 1)[1]
        for line in lines
        if re.match(r"^[A-Z_]*(PASSWORD|TOKEN|SECRET_KEY)=", line)
    }


def production() -> Settings:
    return Settings(production=True, admin_token=RANDOM)


def test_production_refuses_a_missing_admin_token(clean_env: Path) -> None:
    with pytest.raises(WeakSecretsError, match=r"^ADMIN_TOKEN: shorter than 24 characters"):
        Settings(production=True)


@pytest.mark.parametrize("variable", SECRET_VARIABLES)
def test_production_refuses_every_placeholder_env_example_ships(
    clean_env: Path, monkeypatch: pytest.MonkeyPatch, variable: str
) -> None:
    placeholders = shipped_placeholders()
    assert placeholders, ".env.example ships no secret placeholders"
    for placeholder in placeholders:
        monkeypatch.setenv(variable, placeholder)
        with pytest.raises(WeakSecretsError, match=f"^{variable}: a placeholder"):
            production() if variable != "ADMIN_TOKEN" else Settings(production=True)


@pytest.mark.parametrize("variable", SECRET_VARIABLES)
def test_production_refuses_short_secrets(
    clean_env: Path, monkeypatch: pytest.MonkeyPatch, variable: str
) -> None:
    monkeypatch.setenv(variable, RANDOM[:23])
    with pytest.raises(WeakSecretsError, match=f"^{variable}: shorter than 24 characters"):
        production() if variable != "ADMIN_TOKEN" else Settings(production=True)


def test_production_names_the_file_variable_of_a_weak_secret_file(
    clean_env: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    secret = clean_env / "mlflow_tracking_password"
    secret.write_text("change-me\n", encoding="utf-8")
    monkeypatch.setenv("MLFLOW_TRACKING_PASSWORD_FILE", str(secret))
    with pytest.raises(WeakSecretsError) as error:
        production()
    assert str(error.value).startswith(f"MLFLOW_TRACKING_PASSWORD_FILE ({secret}): a placeholder")


@pytest.mark.parametrize(
    ("variable", "url"),
    [
{%- if cookiecutter.use_prediction_logging %}
        ("DATABASE_URL", "postgresql+psycopg://serving:change-me@db:5432/x"),
{%- endif %}
{%- if cookiecutter.use_redis_cache %}
        ("REDIS_URL", "redis://:short%2Fpass@redis:6379/0"),
{%- endif %}
        ("OPTUNA_STORAGE", "postgresql+psycopg://optuna:short@db:5432/optuna"),
        ("MLFLOW_TRACKING_URI", "http://training:change-me@mlflow:5000"),
    ],
)
def test_production_refuses_a_weak_password_inside_a_url(
    clean_env: Path, monkeypatch: pytest.MonkeyPatch, variable: str, url: str
) -> None:
    monkeypatch.setenv(variable, url)
    with pytest.raises(WeakSecretsError, match=f"^{variable} \\(its password\\): "):
        production()


def test_production_refusal_is_one_line_per_variable_without_the_values(
    clean_env: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    weak = {"PGPASSWORD": "short-pg-9Zq", "MLFLOW_TRACKING_PASSWORD": "change-me-mlflow"}
    for name, value in weak.items():
        monkeypatch.setenv(name, value)
    with pytest.raises(WeakSecretsError) as error:
        Settings(production=True)
    lines = str(error.value).splitlines()
    assert [line.split(":")[0] for line in lines] == ["ADMIN_TOKEN", *weak]
    assert all("make prod-secrets" in line for line in lines)
    assert not any(value in str(error.value) for value in weak.values())


def test_production_accepts_random_secrets(
    clean_env: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in SECRET_VARIABLES:
        monkeypatch.setenv(name, secrets.token_urlsafe(32))
    monkeypatch.setenv("OPTUNA_STORAGE", f"postgresql://optuna:{RANDOM}@db:5432/optuna")
    assert Settings(production=True).weak_secrets() == []


def test_development_accepts_placeholders(clean_env: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for name in SECRET_VARIABLES:
        monkeypatch.setenv(name, "change-me")
    settings = Settings()
    assert settings.production is False
    assert len(settings.weak_secrets()) == len(SECRET_VARIABLES)


def test_serve_refuses_to_start_in_production_with_a_weak_secret(clean_env: Path) -> None:
    """The real command line: one line on stderr naming the variable, no traceback, no value."""
    env = {
        **{k: v for k, v in os.environ.items() if k not in SECRET_VARIABLES},
        "PRODUCTION": "true",
        "ADMIN_TOKEN": RANDOM,
        "PGPASSWORD": "placeholder-change-me",
    }
    done = subprocess.run(
        [sys.executable, "-m", "{{ cookiecutter.package_name }}", "serve"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 2, done
    assert done.stderr.strip().splitlines() == [
        "PGPASSWORD: a placeholder; PRODUCTION=true needs a random secret of at least 24 "
        "characters (make prod-secrets writes them to secrets/)"
    ]
    assert "placeholder-change-me" not in done.stderr + done.stdout


def test_host_defaults_are_embedded(clean_env: Path) -> None:
    s = Settings()
    assert s.mlflow_tracking_uri == f"sqlite:///{clean_env / 'mlflow.db'}"
{%- if cookiecutter.use_prediction_logging %}
    assert s.database_url.startswith("sqlite:///")
{%- endif %}
    assert s.optuna_storage.startswith("sqlite:///")
{%- if cookiecutter.use_redis_cache %}
    assert s.redis_url is None
{%- endif %}
    assert s.admin_token is None
    assert s.model_uri == "models:/{{ cookiecutter.package_name }}@champion"


def test_environment_overrides(clean_env: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://mlflow:5000")
    monkeypatch.setenv("MODEL_ALIAS", "challenger")
    s = Settings()
    assert s.mlflow_tracking_uri == "http://mlflow:5000"
    assert s.model_uri.endswith("@challenger")


def test_secret_from_file(clean_env: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    secret = clean_env / "admin_token"
    secret.write_text("s3cret\n")
    monkeypatch.setenv("ADMIN_TOKEN_FILE", str(secret))
    token = Settings().admin_token
    assert token is not None and token.get_secret_value() == "s3cret"


def test_dotenv_is_read(clean_env: Path) -> None:
    (clean_env / ".env").write_text("ADMIN_TOKEN=from-dotenv\nPOSTGRES_PASSWORD=ignored\n")
    token = Settings().admin_token
    assert token is not None and token.get_secret_value() == "from-dotenv"


@pytest.mark.parametrize("scheme", ["postgres", "postgresql"])
def test_postgres_urls_mean_psycopg(
    clean_env: Path, monkeypatch: pytest.MonkeyPatch, scheme: str
) -> None:
    url = f"{scheme}://u:p@db:5432/x"
{%- if cookiecutter.use_prediction_logging %}
    monkeypatch.setenv("DATABASE_URL", url)
{%- endif %}
    monkeypatch.setenv("OPTUNA_STORAGE", url)
    s = Settings()
{%- if cookiecutter.use_prediction_logging %}
    assert s.database_url == "postgresql+psycopg://u:p@db:5432/x"
{%- endif %}
    assert s.optuna_storage == "postgresql+psycopg://u:p@db:5432/x"
{%- if not cookiecutter.use_prediction_logging %}


def test_no_prediction_log_settings_without_it(clean_env: Path) -> None:
    fields = set(Settings.model_fields)
    assert not {f for f in fields if f.startswith("prediction_log")}  # prediction_logging too
    assert "database_url" not in fields
{%- endif %}
{%- if not cookiecutter.use_redis_cache %}


def test_no_cache_settings_without_redis(clean_env: Path) -> None:
    fields = set(Settings.model_fields)
    assert "redis_url" not in fields
    assert not {f for f in fields if f.startswith("cache_")}
{%- endif %}
