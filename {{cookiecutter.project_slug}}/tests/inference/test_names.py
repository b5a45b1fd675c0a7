"""The ONNX input names of features named as a team's file names them."""

from __future__ import annotations

import re

from {{ cookiecutter.package_name }}.inference.names import ONNX_NAMES, onnx_names
from {{ cookiecutter.package_name }}.schema import FEATURE_NAMES

ODD = [
    *("mean radius/mm", "mean.texture", "worst area (µm²)", "Größe", "3rd visit"),
    *("a b", "a/b", "a_b", ""),
]
IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


def test_odd_names_map_to_unique_valid_identifiers_in_a_fixed_way() -> None:
    names = onnx_names(ODD)
    assert list(names) == ODD  # every feature, in order
    assert all(IDENTIFIER.match(name) for name in names.values()), names
    assert len(set(names.values())) == len(ODD)  # "a b", "a/b", "a_b" stay apart
    assert names == onnx_names(ODD)  # the export and the predictor agree
    assert names["mean radius/mm"] == "mean_radius_mm"
    assert names["3rd visit"] == "f_3rd_visit"


def test_plain_names_are_kept() -> None:
    plain = ["amount", "hour_of_day"]
    assert onnx_names(plain) == dict(zip(plain, plain, strict=True))
    assert list(ONNX_NAMES) == list(FEATURE_NAMES)
