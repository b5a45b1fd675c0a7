"""The native (framework) model as an MLflow pyfunc: logged next to the ONNX model, and
registered instead of it when conversion or parity fails."""

from __future__ import annotations

from typing import Any

import joblib
import pandas as pd
from mlflow.pyfunc import PythonModel


class NativeModel(PythonModel):
    """`predict` returns the fraud probability of each row."""

    def load_context(self, context: Any) -> None:
        self.model = joblib.load(context.artifacts["model"])

    def predict(self, context: Any, model_input: pd.DataFrame, params: Any = None) -> Any:
        return self.model.predict_proba(model_input)
