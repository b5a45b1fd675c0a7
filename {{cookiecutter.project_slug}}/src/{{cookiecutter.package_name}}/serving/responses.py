"""Response models of the routes: the OpenAPI contract (the tests validate every response
of the prediction routes against them)."""

from typing import Any

from pydantic import BaseModel, Field

from ..schema import CLASS_NAMES

NOT_READY: dict[int | str, dict[str, Any]] = {
    503: {"description": "No model loaded yet (the reason is in `detail`)"}
}


class Prediction(BaseModel):
    label: str = Field(description=f"Predicted class, one of {list(CLASS_NAMES)}")
    probabilities: dict[str, float] = Field(description="Probability of each class")


class PredictionResponse(Prediction):
    request_id: str
    model_name: str
    model_version: str


class BatchResponse(BaseModel):
    request_id: str
    model_name: str
    model_version: str
    predictions: list[Prediction]
