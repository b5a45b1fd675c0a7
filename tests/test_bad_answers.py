"""Unsupported combinations and bad answers fail in the pre-generation hook, leaving nothing."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from cookiecutter.exceptions import FailedHookException
from cookiecutter.main import cookiecutter

from tests.combinations import BAD_ANSWERS, UNSUPPORTED
from tests.support import TEMPLATE


def assert_refused(
    tmp_path: Path, capfd: pytest.CaptureFixture[str], answers: dict[str, Any], fragment: str
) -> None:
    out = tmp_path / "out"
    out.mkdir()
    with pytest.raises(FailedHookException):
        cookiecutter(str(TEMPLATE), no_input=True, extra_context=answers, output_dir=str(out))
    errors = [line for line in capfd.readouterr().err.splitlines() if line.startswith("ERROR: ")]
    assert any(fragment in line for line in errors), errors
    assert all(len(line) < 240 for line in errors), "one clear line per problem"
    assert list(out.iterdir()) == [], "a half-written project was left behind"


@pytest.mark.parametrize("name", list(UNSUPPORTED))
def test_unsupported_combination_fails_in_hook(
    tmp_path: Path, capfd: pytest.CaptureFixture[str], name: str
) -> None:
    answers, fragment = UNSUPPORTED[name]
    assert_refused(tmp_path, capfd, answers, fragment)


@pytest.mark.parametrize("name", list(BAD_ANSWERS))
def test_bad_answer_fails_in_hook(
    tmp_path: Path, capfd: pytest.CaptureFixture[str], name: str
) -> None:
    answers, fragment = BAD_ANSWERS[name]
    assert_refused(tmp_path, capfd, answers, fragment)
