"""The HTTP routes of a generated project's serving app, read from its route modules (the
template's tests do not import the app: its dependencies live in the project's environment)."""

from __future__ import annotations

import re
from pathlib import Path

# `@router.post(` then the path, possibly on the next line.
_POST = re.compile(r'@router\.post\(\s*"([^"]*)"')
_PREFIX = re.compile(r'APIRouter\([^)]*prefix="([^"]+)"')


def post_routes(project: Path, package: str) -> set[str]:
    """Every POST route, prefix included: /predict, /v2/models/{name}/infer, /admin/reload..."""
    found = set()
    for path in (project / "src" / package / "serving").rglob("*.py"):
        text = path.read_text(encoding="utf-8")
        prefix = _PREFIX.search(text)
        for route in _POST.findall(text):
            found.add((prefix.group(1) if prefix else "") + route)
    return found


def scoring_routes(project: Path, package: str) -> set[str]:
    """The POST routes that run the model: every POST route but the operator's /admin/*."""
    return {r for r in post_routes(project, package) if not r.startswith("/admin")}


def concrete(route: str) -> str:
    """A request path for a route template: /v2/models/{name}/infer -> /v2/models/m/infer."""
    return re.sub(r"\{[^}]+\}", "m", route)
