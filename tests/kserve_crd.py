"""CRD schemas vendored in tests/schemas (KServe's InferenceService, the External Secrets
Operator's ExternalSecret: no package ships them and no cluster runs here), applied as strictly
as the API server's strict field validation."""

from __future__ import annotations

import functools
import gzip
import json
from pathlib import Path
from typing import Any

import jsonschema

SCHEMAS = Path(__file__).parent / "schemas"
SCHEMA = SCHEMAS / "kserve-inferenceservice-v1beta1.json.gz"
EXTERNAL_SECRET = SCHEMAS / "external-secrets-externalsecret-v1.json.gz"


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
def validator(path: Path = SCHEMA) -> jsonschema.Draft7Validator:
    schema = json.loads(gzip.decompress(path.read_bytes()))
    return jsonschema.Draft7Validator(_strict(schema))


def errors(doc: dict[str, Any], schema: Path = SCHEMA) -> list[str]:
    """One line per violation, with the path of the offending field."""
    found = validator(schema).iter_errors(doc)
    return [
        f"{'.'.join(map(str, error.absolute_path)) or '(root)'}: {error.message[:200]}"
        for error in sorted(found, key=lambda e: list(map(str, e.path)))
    ]
