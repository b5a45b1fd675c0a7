"""Decoding an infer request's input tensors into columns, one list of values per feature: the
tensor layout (names, datatypes, shapes, nesting); the values themselves are the validator's
(`inference/validation.py`, strict: each element of its datatype's JSON kind)."""

from __future__ import annotations

from typing import Any

from ....schema import FEATURES, FEATURES_BY_NAME
from .types import InferenceRequest, RequestInput

INT_TYPES = frozenset({"INT8", "INT16", "INT32", "INT64", "UINT8", "UINT16", "UINT32", "UINT64"})
FLOAT_TYPES = frozenset({"FP16", "FP32", "FP64"})
DATATYPES = INT_TYPES | FLOAT_TYPES | {"BOOL", "BYTES", "BF16"}
BINARY_HEADER = "inference-header-content-length"


class ProtocolError(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


def declared_datatype(name: str) -> str:
    feature = FEATURES_BY_NAME[name]
    if feature.kind == "categorical":
        return "BYTES"
    return "INT64" if feature.dtype == "int" else "FP32"


def _accepted(name: str) -> frozenset[str]:
    declared = declared_datatype(name)
    if declared == "INT64":
        return INT_TYPES
    return FLOAT_TYPES if declared == "FP32" else frozenset({"BYTES"})


ACCEPTED = {feature.name: _accepted(feature.name) for feature in FEATURES}


def _elements(tensor: RequestInput) -> list[Any]:
    """The tensor's data as one element per row (shape [N] or [N, 1], flat or nested)."""
    shape = tensor.shape
    if not (len(shape) == 1 or (len(shape) == 2 and shape[1] == 1)) or shape[0] < 0:
        raise ProtocolError(
            400, f"input '{tensor.name}': shape {shape} is not [N] or [N, 1] (one value per row)"
        )
    data = tensor.data
    if data and type(data[0]) is list:
        if {type(v) for v in data} != {list} or {len(v) for v in data} != {1}:
            raise ProtocolError(
                400, f"input '{tensor.name}': nested data must hold one value per row"
            )
        data = [v[0] for v in data]
    if len(data) != shape[0]:
        raise ProtocolError(
            400,
            f"input '{tensor.name}': shape {shape} holds {shape[0]} elements, data has {len(data)}",
        )
    return data


def request_columns(request: InferenceRequest) -> tuple[dict[str, list[Any]], int]:
    """(one list of values per named input tensor, the row count); ProtocolError when the
    tensors are not one per feature of one length."""
    columns: dict[str, list[Any]] = {}
    for tensor in request.inputs:
        if tensor.name in columns:
            raise ProtocolError(400, f"input '{tensor.name}' given twice")
        if tensor.name not in ACCEPTED:
            raise ProtocolError(400, f"input '{tensor.name}': not an input of the model")
        if tensor.parameters and "binary_data_size" in tensor.parameters:
            raise ProtocolError(
                400, f"input '{tensor.name}': binary tensor data is not supported; send JSON data"
            )
        if tensor.datatype not in DATATYPES:
            raise ProtocolError(400, f"input '{tensor.name}': unknown datatype {tensor.datatype!r}")
        if tensor.datatype not in ACCEPTED[tensor.name]:
            raise ProtocolError(
                400,
                f"input '{tensor.name}': datatype {tensor.datatype} does not match the model's "
                f"{declared_datatype(tensor.name)}",
            )
        columns[tensor.name] = _elements(tensor)
    missing = [f.name for f in FEATURES if f.name not in columns]
    if missing:
        raise ProtocolError(400, f"missing input(s): {', '.join(missing)}")
    sizes = {len(values) for values in columns.values()}
    if len(sizes) > 1:
        counts = ", ".join(f"{name}={len(values)}" for name, values in columns.items())
        raise ProtocolError(400, f"inputs hold different numbers of rows: {counts}")
    rows = sizes.pop()
    if rows == 0:
        raise ProtocolError(400, "inputs hold no rows")
    return columns, rows


def requested_outputs(request: InferenceRequest, outputs: list[str]) -> list[str]:
    if not request.outputs:
        return outputs
    names = [output.name for output in request.outputs]
    unknown = [name for name in names if name not in outputs]
    if unknown:
        raise ProtocolError(400, f"unknown output(s) {unknown}; the model gives {outputs}")
    return names
