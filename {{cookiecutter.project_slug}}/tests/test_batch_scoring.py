"""`{{ cookiecutter.package_name }} score`: a file in, predictions + rejects out, the run in MLflow. The model is
the session's registered champion; predictions are compared with the server's own predictor."""

from __future__ import annotations

import csv
import hashlib
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from {{ cookiecutter.package_name }}.cli import main
from {{ cookiecutter.package_name }}.schema import CLASS_NAMES, FEATURE_NAMES
from {{ cookiecutter.package_name }}.serving.requests import example_record
from {{ cookiecutter.package_name }}.settings import Settings, get_settings

from .serving.test_mlflow_protocol import sample_records

BAD_ROWS: list[tuple[dict[str, Any], str]] = [
    ({"amount": "-5"}, "amount: Input should be greater than or equal to 0"),
    ({"amount": "abc"}, "amount: Input should be a valid number"),
    ({"amount": ""}, "amount: Input should be a valid number"),
    ({"amount": "nan"}, "amount: Input should be a finite number"),
    ({"amount": "inf"}, "amount: Input should be a finite number"),
    ({"hour": "3.5"}, "hour: Input should be a valid integer"),
    ({"hour": "24"}, "hour: Input should be less than or equal to 23"),
    ({"channel": "telepathy"}, "channel: Input should be 'chip'"),
]


@pytest.fixture
def scoring_env(registered_model: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Settings:
    monkeypatch.chdir(tmp_path)  # no project .env
    for name, value in {
        "PROJECT_ROOT": str(tmp_path),
        "MLFLOW_TRACKING_URI": registered_model.tracking_uri,
        "MODEL_NAME": registered_model.name,
        "UNKNOWN_CATEGORY": "reject",
    }.items():
        monkeypatch.setenv(name, value)
    get_settings.cache_clear()
    yield get_settings()
    get_settings.cache_clear()


def write_csv(path: Path, rows: list[dict[str, Any]]) -> None:
    with path.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=["txn_id", *FEATURE_NAMES])
        writer.writeheader()
        writer.writerows(rows)


def expected(settings: Settings, records: list[dict[str, Any]]) -> tuple[list[str], np.ndarray]:
    from {{ cookiecutter.package_name }}.inference.registry import load_registered_model
    from {{ cookiecutter.package_name }}.inference.validation import Validator

    model = load_registered_model(settings)
    result = model.predict(Validator(settings.unknown_category).records(records))
    return result.class_names(), np.asarray(result.probabilities)


def read(path: Path) -> list[dict[str, Any]]:
    import pyarrow.csv as pacsv
    import pyarrow.parquet as pq

    table = pq.read_table(path) if path.suffix == ".parquet" else pacsv.read_csv(path)
    return table.to_pylist()


@pytest.mark.parametrize(
    ("suffix", "chunk_rows"), [(".csv", 100_000), (".parquet", 7), (".csv", 5)]
)
def test_score_file_writes_predictions_rejects_and_logs_the_run(
    scoring_env: Settings, tmp_path: Path, suffix: str, chunk_rows: int
) -> None:
    good = sample_records(40)
    rows: list[dict[str, Any]] = []
    bad_ids: dict[str, str] = {}
    for i, record in enumerate(good):
        rows.append({"txn_id": f"t{i}", **record})
        if i < len(BAD_ROWS):  # a bad row after each of the first good ones
            change, reason = BAD_ROWS[i]
            rows.append({"txn_id": f"bad{i}", **{**example_record(), **change}})
            bad_ids[f"bad{i}"] = reason
    source = tmp_path / "input.csv"
    write_csv(source, rows)
    if suffix == ".parquet":
        import pyarrow.csv as pacsv
        import pyarrow.parquet as pq

        table = pacsv.read_csv(
            source,
            convert_options=pacsv.ConvertOptions(
                strings_can_be_null=False,
                column_types={"txn_id": "string", "amount": "string", "hour": "string"},
            ),
        )
        source = tmp_path / "input.parquet"
        pq.write_table(table, source)
    output = tmp_path / f"predictions{suffix}"
    code = main(
        ["score", "--input", str(source), "--output", str(output), "--chunk-rows", str(chunk_rows)]
    )
    assert code == 0

    predictions = read(output)
    labels, probabilities = expected(scoring_env, good)
    assert [p["txn_id"] for p in predictions] == [f"t{i}" for i in range(len(good))]
    assert [p["label"] for p in predictions] == labels
    for i, name in enumerate(CLASS_NAMES):
        np.testing.assert_allclose(
            [p[f"probability_{name}"] for p in predictions], probabilities[:, i], atol=1e-6
        )
    from mlflow import MlflowClient

    client = MlflowClient(scoring_env.mlflow_tracking_uri)
    version = client.get_model_version_by_alias(scoring_env.model_name, "champion").version
    assert {str(p["model_version"]) for p in predictions} == {str(version)}
    positions = {row["txn_id"]: n for n, row in enumerate(rows, start=1)}
    assert [p["row"] for p in predictions] == [positions[p["txn_id"]] for p in predictions]

    rejects = read(output.with_name(f"predictions.rejects{suffix}"))
    assert {r["txn_id"]: r["reason"] for r in rejects}.keys() == bad_ids.keys()
    for r in rejects:
        assert r["reason"].startswith(bad_ids[r["txn_id"]]), r
        assert r["row"] == positions[r["txn_id"]]

    experiment = client.get_experiment_by_name(f"{scoring_env.experiment_name}-scoring")
    assert experiment is not None
    run = client.search_runs([experiment.experiment_id], order_by=["start_time DESC"])[0]
    assert run.data.metrics["rows"] == len(rows)
    assert run.data.metrics["rejected"] == len(bad_ids)
    assert run.data.metrics["scored"] == len(good)
    assert run.data.tags["model_version"] == str(version)
    assert run.data.params["input_sha256"] == hashlib.sha256(source.read_bytes()).hexdigest()


def test_a_file_without_a_feature_column_is_refused(
    scoring_env: Settings, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    source = tmp_path / "input.csv"
    record = example_record()
    del record["hour"]
    with source.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(record))
        writer.writeheader()
        writer.writerow(record)
    code = main(
        ["score", "--input", str(source), "--output", str(tmp_path / "out.csv"), "--no-log"]
    )
    assert code == 2
    assert "missing feature column(s) hour" in capsys.readouterr().err


def test_no_registered_model_is_one_line_and_writes_nothing(
    scoring_env: Settings,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    source, output = tmp_path / "input.csv", tmp_path / "out.csv"
    write_csv(source, [example_record()])
    monkeypatch.setenv("MODEL_NAME", "never-registered")
    get_settings.cache_clear()
    code = main(["score", "--input", str(source), "--output", str(output), "--no-log"])
    err = capsys.readouterr().err
    assert code == 1
    assert err.startswith("score: models:/never-registered@"), err
    assert "is not registered" in err
    assert err.count("\n") == 1 and "Traceback" not in err
    assert not output.exists() and not output.with_name("out.rejects.csv").exists()


@pytest.mark.parametrize("name", ["input.json", "input"])
def test_other_formats_are_refused(
    scoring_env: Settings, tmp_path: Path, name: str, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / name).write_text("{}")
    code = main(
        [
            "score",
            "--input",
            str(tmp_path / name),
            "--output",
            str(tmp_path / "out.csv"),
            "--no-log",
        ]
    )
    assert code == 2
    assert "expected a .csv or .parquet file" in capsys.readouterr().err


def test_reading_parquet_holds_about_one_chunk_whatever_the_file_size(tmp_path: Path) -> None:
    """Arrow's memory while the chunks of a 20-row-group file are read one by one stays near
    one chunk (pyarrow's default pre-buffering kept every row group read so far)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from {{ cookiecutter.package_name }}.batch_scoring import read_chunks

    group = pa.table({"x": np.random.default_rng(0).random(50_000)})
    path = tmp_path / "big.parquet"
    with pq.ParquetWriter(path, group.schema, compression="none") as writer:
        for _ in range(20):
            writer.write_table(group)
    baseline = pa.total_allocated_bytes()
    peak = rows = 0
    for batch in read_chunks(path, group.num_rows):
        rows += batch.num_rows
        peak = max(peak, pa.total_allocated_bytes() - baseline)
        del batch
    assert rows == 20 * group.num_rows
    assert peak < 4 * group.nbytes, f"{peak / group.nbytes:.1f} chunks held"
