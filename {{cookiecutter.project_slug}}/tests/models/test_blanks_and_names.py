"""A team's table: blanks in nullable features and names with spaces, `/`, dots and non-ASCII
letters. The model imputes inside its ONNX graph, so the graph reproduces the native model on
rows with blanks too, fed under the names `inference/names.py` gives."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from {{ cookiecutter.package_name }} import models, schema
from {{ cookiecutter.package_name }}.inference.names import onnx_names
from {{ cookiecutter.package_name }}.pipeline.onnx_export import check_parity, onnx_proba, onnx_session
from {{ cookiecutter.package_name }}.schema import Feature

from .test_model import SMALL_PARAMS

FEATURES = (
    Feature(
        "clinic/site", "categorical", "", "str", categories=("Nord", "Süd", "West"), nullable=True
    ),
    Feature("mean radius/mm", "numeric", "", minimum=0, maximum=40, nullable=True),
    Feature("Größe.cm", "numeric", "", minimum=0, maximum=250, nullable=True),
    Feature("visits 24h", "numeric", "", "int", 0, 50),
)
BLANK_SHARE = 0.1


@pytest.fixture
def team_schema(monkeypatch: pytest.MonkeyPatch) -> None:
    values = {
        "FEATURES": FEATURES,
        "FEATURE_NAMES": tuple(f.name for f in FEATURES),
        "FEATURES_BY_NAME": {f.name: f for f in FEATURES},
        "NUMERIC_FEATURES": tuple(f.name for f in FEATURES if f.kind == "numeric"),
        "CATEGORICAL_FEATURES": tuple(f.name for f in FEATURES if f.kind == "categorical"),
    }
    for name, value in values.items():
        monkeypatch.setattr(schema, name, value)


def _table(rows: int, seed: int) -> tuple[pd.DataFrame, np.ndarray]:
    rng = np.random.default_rng(seed)
    site = rng.choice(["Nord", "Süd", "West"], rows).astype(object)
    radius = rng.uniform(5, 30, rows)
    size = rng.uniform(100, 200, rows)
    visits = rng.integers(0, 50, rows).astype(float)
    logit = (radius - 17) / 3 + (site == "Süd") + (size - 150) / 30
    y = (rng.random(rows) < 1 / (1 + np.exp(-logit))).astype(np.int64)
    frame = pd.DataFrame(
        {"clinic/site": site, "mean radius/mm": radius, "Größe.cm": size, "visits 24h": visits}
    )
    for name in ("mean radius/mm", "Größe.cm"):
        frame.loc[rng.random(rows) < BLANK_SHARE, name] = np.nan
    frame.loc[rng.random(rows) < BLANK_SHARE, "clinic/site"] = ""  # what the data loader gives
    return frame, y


@pytest.mark.usefixtures("team_schema")
def test_onnx_export_imputes_blanks_like_the_native_model() -> None:
    train, y = _table(1500, 1)
    val, y_val = _table(500, 2)
    model = models.create(SMALL_PARAMS, "cpu")
    model.fit(train, y, val, y_val)
    onnx_model = model.to_onnx()
    session = onnx_session(onnx_model)
    assert {i.name for i in session.get_inputs()} == set(onnx_names(schema.FEATURE_NAMES).values())

    holdout, _ = _table(400, 3)
    blank = holdout.isna().any(axis=1) | (holdout["clinic/site"] == "")
    assert blank.sum() > 50
    parity = check_parity(model, onnx_model, holdout, tolerance=1e-4)
    assert parity.passed, parity
    native = model.predict_proba(holdout[blank])
    converted = onnx_proba(session, holdout[blank])
    np.testing.assert_allclose(converted, native, atol=1e-4)
    assert np.isfinite(converted).all()
    # a row emptied by hand: the graph imputes it as the native model does
    row = holdout[~blank].head(1)
    emptied = row.assign(**{"mean radius/mm": np.nan})
    native_emptied = model.predict_proba(emptied)[0]
    assert onnx_proba(session, emptied)[0] == pytest.approx(native_emptied, abs=1e-4)
