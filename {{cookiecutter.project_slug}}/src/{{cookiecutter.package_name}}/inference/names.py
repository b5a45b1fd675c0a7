"""The ONNX graph's input names: one per schema feature, derived here and nowhere else.

Requests, responses and the OpenAPI schema use the schema's own names (spaces, `/`, dots,
non-ASCII letters). Converters rename graph inputs they consider invalid (skl2onnx turns
`mean radius` into `mean_radius`), so the export names each input with `onnx_name` and the
predictor feeds the graph through the same mapping: both sides agree by construction.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from ..schema import FEATURE_NAMES

_INVALID = re.compile(r"\W", flags=re.ASCII)  # anything but ASCII letters, digits, `_`


def onnx_names(names: Iterable[str]) -> dict[str, str]:
    """Feature name -> a valid, unique graph input name (ASCII identifier; a clash with an
    earlier feature gets `_2`, `_3`, ...). Depends on the order of `names` only."""
    mapping: dict[str, str] = {}
    used: set[str] = set()
    for name in names:
        base = _INVALID.sub("_", name)
        if not base or base[0].isdigit():
            base = f"f_{base}"
        candidate, n = base, 2
        while candidate in used:
            candidate, n = f"{base}_{n}", n + 1
        used.add(candidate)
        mapping[name] = candidate
    return mapping


# the schema's features, in schema order
ONNX_NAMES: dict[str, str] = onnx_names(FEATURE_NAMES)


def onnx_name(feature: str) -> str:
    return ONNX_NAMES[feature]
