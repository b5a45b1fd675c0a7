from pathlib import Path

import pytest

from {{ cookiecutter.package_name }}.settings import Settings


@pytest.fixture
def clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    for name in (
        "MLFLOW_TRACKING_URI",
        "DATABASE_URL",
        "OPTUNA_STORAGE",
        "REDIS_URL",
        "ADMIN_TOKEN",
        "ADMIN_TOKEN_FILE",
        "MODEL_ALIAS",
        "PRODUCTION",
    ):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("PROJECT_ROOT", str(tmp_path))
    monkeypatch.chdir(tmp_path)  # no .env here
    return tmp_path


@pytest.mark.parametrize("token", [None, "change-me", "CHANGE-ME", "short-but-random-x7Q"])
def test_production_refuses_placeholder_and_short_admin_tokens(
    clean_env: Path, token: str | None
) -> None:
    with pytest.raises(ValueError, match="ADMIN_TOKEN") as error:
        Settings(production=True, admin_token=token)
    assert "24 characters" in str(error.value)


def test_production_accepts_a_random_token_and_development_anything(clean_env: Path) -> None:
    token = "x7Q" * 11
    assert Settings(production=True, admin_token=token).admin_token is not None
    assert Settings(admin_token="change-me").production is False


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
