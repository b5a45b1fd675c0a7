"""KServe's InferenceService CRD schema (tests/schemas, vendored: no package ships it and no
cluster runs here), applied as strictly as the API server's strict field validation."""

from __future__ import annotations

import functools
import gzip
import json
from pathlib import Path
from typing import Any

import jsonschema

SCHEMA = Path(__file__).parent / "schemas" / "kserve-inferenceservice-v1beta1.json.gz"


def _strict(node: Any) -> Any:
    """A structural schema as JSON Schema: unknown fields are refused wherever the CRD does not
    preserve them (`kubectl apply --validate=strict`), int-or-string accepts either."""
    if isinstance(node, list):
        return [_strict(item) for item in node]
    if not isinstance(node, dict):
        return node
    node = {key: _strict(value) for key, value in node.items()}
    if node.get("x-kubernetes-int-or-string"):
        node.setdefault("anyOf", [{"type": "integer"}, {"type": "string"}])
    if (
        node.get("type") == "object"
        and "properties" in node
        and "additionalProperties" not in node
        and not node.get("x-kubernetes-preserve-unknown-fields")
    ):
        node["additionalProperties"] = False
    return node


@functools.cache
def validator() -> jsonschema.Draft7Validator:
    schema = json.loads(gzip.decompress(SCHEMA.read_bytes()))
    return jsonschema.Draft7Validator(_strict(schema))


def errors(doc: dict[str, Any]) -> list[str]:
    """One line per violation, with the path of the offending field."""
    return [
        f"{'.'.join(map(str, error.absolute_path)) or '(root)'}: {error.message[:200]}"
        for error in sorted(validator().iter_errors(doc), key=lambda e: list(map(str, e.path)))
    ]
