"""The claims about the named answer sets in tests/combinations.py, derived from
cookiecutter.json and the pre-generation hook rather than kept by hand."""

from __future__ import annotations

import itertools
from typing import Any

import pytest

from tests.combinations import SUPPORTED
from tests.conftest import render_answers
from tests.support import load_hook, option_choices

pre = load_hook("pre_gen_project")
# The pairs tests/combinations.py promises to cover, wherever the hook accepts the pair.
PAIRS = (
    ("compute", "model_framework"),
    ("compute", "python_version"),
    ("model_framework", "python_version"),
)


def supported_contexts() -> list[dict[str, Any]]:
    return [render_answers(**answers) for answers in SUPPORTED.values()]


def accepted(**values: Any) -> bool:
    """Whether some value of the other options makes the hook accept these values."""
    if values.get("compute") == "cuda" and "cuda_version" not in values:
        return any(
            accepted(**values, cuda_version=version) for version in option_choices()["cuda_version"]
        )
    return pre.validate(render_answers(**values)) == []


def test_every_option_value_is_baked() -> None:
    contexts = supported_contexts()
    missing = [
        f"{key}={value!r}"
        for key, values in option_choices().items()
        for value in values
        if key != "cuda_version" and not any(c[key] == value for c in contexts)
    ]
    # cuda_version only matters with compute=cuda: each version is baked on CUDA.
    missing += [
        f"cuda_version={version!r} (with compute=cuda)"
        for version in option_choices()["cuda_version"]
        if not any(c["compute"] == "cuda" and c["cuda_version"] == version for c in contexts)
    ]
    assert missing == [], "values no SUPPORTED answer set bakes"


@pytest.mark.parametrize("pair", PAIRS, ids=["x".join(p) for p in PAIRS])
def test_every_accepted_pair_is_baked(pair: tuple[str, str]) -> None:
    first, second = pair
    contexts = supported_contexts()
    choices = option_choices()
    missing = [
        (a, b)
        for a, b in itertools.product(choices[first], choices[second])
        if accepted(**{first: a, second: b})
        and not any(c[first] == a and c[second] == b for c in contexts)
    ]
    assert missing == [], f"accepted {first} x {second} pairs no SUPPORTED answer set bakes"
