"""The Open Inference Protocol v2 over REST (KServe V2; Triton, MLServer and Seldon clients):
health, server and model metadata, and `infer` under `/v2/`, with the model name =
`MODEL_NAME` and the version = the registry version being served.

The model takes one input tensor per feature of `schema.FEATURES` (shape `[-1]`: one element per
row; INT64 for integer features, FP32 for the other numerics, BYTES for categoricals) and gives
the tensors of its result (`inference/results.py`: `label`, BYTES, and `probabilities`, FP32
`[-1, n_classes]`). Tensors travel as JSON (`data`); the binary tensor extension is refused with
400. Errors are `{"error": "..."}`: 400 for a bad request, 404 for an unknown model or version,
503 while no model is loaded.

`types.py` holds the protocol's objects, `tensors.py` decodes input tensors into columns,
`routes.py` the routes.
"""

from .routes import open_inference_router
from .tensors import declared_datatype

__all__ = ["declared_datatype", "open_inference_router"]
