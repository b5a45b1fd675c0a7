import hashlib
from pathlib import Path

from {{ cookiecutter.package_name }} import schema
from {{ cookiecutter.package_name }}.data.generate import generate, write_csv
from {{ cookiecutter.package_name }}.data.load import load_table


def _digest(path: Path) -> str:
    return hashlib.md5(path.read_bytes()).hexdigest()


def test_same_seed_same_bytes_other_seed_other_data(tmp_path: Path) -> None:
    for name, seed in (("a.csv", 7), ("b.csv", 7), ("c.csv", 8)):
        write_csv(generate(2000, seed), tmp_path / name)
    assert _digest(tmp_path / "a.csv") == _digest(tmp_path / "b.csv")
    assert _digest(tmp_path / "a.csv") != _digest(tmp_path / "c.csv")


def test_generated_table_matches_the_schema_with_a_few_percent_fraud(tmp_path: Path) -> None:
    write_csv(generate(20_000, 1, fraud_rate=0.03), tmp_path / "t.csv")
    frame = load_table(tmp_path / "t.csv")  # validates every column
    assert list(frame.columns) == [*schema.FEATURE_NAMES, schema.TARGET]
    assert 0.02 < frame[schema.TARGET].mean() < 0.045
    for name in schema.CATEGORICAL_FEATURES:
        assert set(frame[name]) <= set(schema.FEATURES_BY_NAME[name].categories)
    # the label carries signal: fraud is more frequent at night and abroad
    night = frame["hour"] < 6
    assert frame.loc[night, schema.TARGET].mean() > 2 * frame.loc[~night, schema.TARGET].mean()
