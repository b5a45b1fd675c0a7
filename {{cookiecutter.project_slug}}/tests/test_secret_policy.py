"""secret_policy: what PRODUCTION=true and `make prod-secrets` accept. Length alone is not
enough: repeats, alphabet and keyboard runs, and common words padded with digits are refused;
what the generator writes always passes."""

from __future__ import annotations

import secrets
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from {{ cookiecutter.package_name }}.secret_policy import MIN_LENGTH, weakness
from {{ cookiecutter.package_name }}.settings import Settings, WeakSecretsError

POLICY = Path(__file__).resolve().parents[1] / "src" / "{{ cookiecutter.package_name }}"
POLICY /= "secret_policy.py"

LOW_ENTROPY = {
    "a" * MIN_LENGTH: "a repeated pattern",
    "Password123Password123Pa": "a repeated pattern",
    "abababababababababababab": "a repeated pattern",
    "123456789012345678901234": "a repeated pattern",
    "abcdefghijklmnopqrstuvwxyz": "mostly an alphabet or keyboard run",
    "qwertyuiopasdfghjklzxcvbnm12": "mostly an alphabet or keyboard run",
    "Summer2024!Winter2024!Dragon": "common words with digits",
    "Password2024!Password2025!": "common words with digits",
    "aaaaaaaaaaaabbbbbbbbbbbbcc": "too little variety (under 48 bits estimated)",
}


@pytest.mark.parametrize(("value", "reason"), list(LOW_ENTROPY.items()))
def test_refuses_low_entropy_values_of_any_length(value: str, reason: str) -> None:
    assert len(value) >= MIN_LENGTH
    assert weakness(value) == reason


@pytest.mark.parametrize(
    "make",
    [lambda: secrets.token_urlsafe(32), lambda: secrets.token_hex(12)],
    ids=["urlsafe", "hex"],
)
def test_generated_secrets_always_pass(make: Callable[[], str]) -> None:
    """token_urlsafe(32): what the generator and `make prod-secrets` write; token_hex(12): the
    shortest random value the length rule admits."""
    values = [make() for _ in range(5000)]
    assert [v for v in values if weakness(v)] == []


def test_passphrases_pass() -> None:
    assert weakness("correct horse battery staple") is None
    assert weakness("Tr0ub4dor&3-zebra-violin-kettle") is None


def test_the_script_refuses_what_the_function_refuses() -> None:
    """`make prod-secrets` runs the file as a script with the value on stdin."""
    for value, reason in LOW_ENTROPY.items():
        done = subprocess.run(
            [sys.executable, "-I", "-S", str(POLICY)], input=value, capture_output=True, text=True
        )
        assert (done.returncode, done.stdout.strip()) == (1, reason)


@pytest.mark.parametrize("value", ["a" * 24, "Password123Password123Pa"])
def test_production_settings_refuse_them(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, value: str
) -> None:
    monkeypatch.setenv("PROJECT_ROOT", str(tmp_path))
    monkeypatch.chdir(tmp_path)
    for name in ("ADMIN_TOKEN_FILE", "PRODUCTION"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("ADMIN_TOKEN", value)
    with pytest.raises(WeakSecretsError, match=r"^ADMIN_TOKEN: a repeated pattern"):
        Settings(production=True)
