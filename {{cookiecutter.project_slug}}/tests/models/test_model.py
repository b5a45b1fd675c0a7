"""The project's model framework behind the one interface: fit/predict, ONNX contract, device."""

import logging

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import average_precision_score

from {{ cookiecutter.package_name }} import models, schema
from {{ cookiecutter.package_name }}.data.generate import generate
from {{ cookiecutter.package_name }}.data.load import validate
from {{ cookiecutter.package_name }}.pipeline.onnx_export import check_parity, onnx_proba, onnx_session

SMALL_PARAMS = {
    "seed": 0,
    "threads": 1,
    # a few iterations, whatever the framework (each reads only its own keys)
    "max_iter": 40,
    "n_estimators": 40,
    "epochs": 4,
    "batch_size": 128,
    "learning_rate": 0.005 if models.FRAMEWORK == "pytorch" else 0.1,
}


@pytest.fixture(scope="module")
def data() -> tuple[pd.DataFrame, pd.DataFrame]:
    frame = validate(generate(4000, 11))
    return frame.iloc[:3000], frame.iloc[3000:]


@pytest.fixture(scope="module")
def fitted(data: tuple[pd.DataFrame, pd.DataFrame]) -> tuple[models.TabularModel, models.FitResult]:
    train, val = data
    model = models.create(SMALL_PARAMS, "cpu")
    result = model.fit(train, train[schema.TARGET].to_numpy(), val, val[schema.TARGET].to_numpy())
    return model, result


def test_fit_predict_learns_something(fitted, data) -> None:
    model, result = fitted
    _, val = data
    proba = model.predict_proba(val)
    assert proba.shape == (len(val),)
    assert np.all((proba >= 0) & (proba <= 1))
    assert average_precision_score(val[schema.TARGET], proba) > 3 * val[schema.TARGET].mean()
    assert len(result.history) > 1 and {"train_loss", "val_loss"} <= set(result.history[0][1])
    assert result.device == "cpu"


def test_onnx_graph_follows_the_registry_contract(fitted, data) -> None:
    model, _ = fitted
    session = onnx_session(model.to_onnx())
    inputs = {i.name: i for i in session.get_inputs()}
    assert list(inputs) == list(schema.FEATURE_NAMES)
    for feature in schema.FEATURES:
        expected = "tensor(float)" if feature.kind == "numeric" else "tensor(string)"
        assert inputs[feature.name].type == expected
        assert inputs[feature.name].shape[1] == 1
    outputs = {o.name: o.type for o in session.get_outputs()}
    assert outputs == {"label": "tensor(int64)", "probabilities": "tensor(float)"}
    parity = check_parity(model, model.to_onnx(), data[1], tolerance=1e-4)
    assert parity.passed, parity


def test_unknown_category_scores_like_all_zero_encoding(fitted, data) -> None:
    model, _ = fitted
    rows = data[1].head(3).copy()
    rows["merchant_category"] = "never-seen"
    proba = onnx_proba(onnx_session(model.to_onnx()), rows)
    assert np.allclose(proba, model.predict_proba(rows), atol=1e-4)


def test_cuda_request_without_gpu_falls_back_to_cpu_with_a_log_line(
    caplog: pytest.LogCaptureFixture,
) -> None:
    if models.base.gpu_available_for(models.FRAMEWORK):
        pytest.skip("a GPU is usable here: no fallback to observe")
    with caplog.at_level(logging.WARNING):
        assert models.resolve_device("cuda", models.FRAMEWORK) == "cpu"
    assert "CPU" in caplog.text


def test_training_is_deterministic_on_cpu(data) -> None:
    train, val = data
    probas = []
    for _ in range(2):
        model = models.create(SMALL_PARAMS, "cpu")
        model.fit(train, train[schema.TARGET].to_numpy(), val, val[schema.TARGET].to_numpy())
        probas.append(model.predict_proba(val))
    assert np.array_equal(probas[0], probas[1])
