import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from {{ cookiecutter.package_name }}.data.generate import generate
from {{ cookiecutter.package_name }}.data.load import DataValidationError, load_table, validate


@pytest.fixture
def frame() -> pd.DataFrame:
    return generate(300, 3)


def test_valid_table_gets_schema_dtypes(frame: pd.DataFrame, tmp_path: Path) -> None:
    frame.to_csv(tmp_path / "ok.csv", index=False)
    loaded = load_table(tmp_path / "ok.csv")
    assert str(loaded["amount"].dtype) == "float32"
    assert str(loaded["hour"].dtype) == "float32"
    assert loaded["merchant_category"].map(type).eq(str).all()
    assert str(loaded["is_fraud"].dtype) == "int64"


def test_missing_and_mistyped_columns_give_one_message_naming_them(frame: pd.DataFrame) -> None:
    broken = frame.drop(columns=["amount", "channel"]).assign(hour="noon")
    with pytest.raises(DataValidationError) as info:
        validate(broken, source="upload.csv")
    message = str(info.value)
    assert "\n" not in message
    assert "upload.csv" in message
    assert "missing columns: amount, channel" in message
    assert "hour (expected int)" in message


def test_unknown_category_empty_value_and_range_are_reported(frame: pd.DataFrame) -> None:
    broken = frame.copy()
    broken.loc[0, "merchant_category"] = "casino"
    broken.loc[1, "customer_age"] = 7
    broken.loc[2, "device_type"] = None
    with pytest.raises(DataValidationError) as info:
        validate(broken)
    message = str(info.value)
    assert "merchant_category ('casino')" in message
    assert "customer_age (allowed 18..100)" in message
    assert "empty values: device_type" in message


def test_missing_file_says_dvc_pull(tmp_path: Path) -> None:
    with pytest.raises(DataValidationError, match="dvc pull"):
        load_table(tmp_path / "nope.csv")


def test_cli_prints_one_line_not_a_traceback(small_project, frame: pd.DataFrame) -> None:
    ctx = small_project()
    ctx.paths.raw.parent.mkdir(parents=True)
    frame.drop(columns=["amount"]).to_csv(ctx.paths.raw, index=False)
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "{{ cookiecutter.package_name }}",
            "prepare",
            "--params",
            str(ctx.paths.root / "params.yaml"),
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 1
    assert "Traceback" not in done.stderr
    errors = [line for line in done.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "missing columns: amount" in errors[0]
