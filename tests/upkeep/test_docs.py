"""The generated documentation: valid Mermaid, working relative links, no template leftovers,
and an example request that matches the schema, for every supported combination."""

from __future__ import annotations

import json
import os
import re
import shutil
from pathlib import Path

import pytest

from tests.combinations import SUPPORTED
from tests.conftest import Baked
from tests.support import run

# One worker runs them all, so Mermaid is installed once per session.
pytestmark = [pytest.mark.upkeep, pytest.mark.xdist_group("mermaid")]

MERMAID_VERSION = "11"
PARSE_JS = """
import { JSDOM } from "jsdom";
import fs from "fs";
const dom = new JSDOM("<!doctype html><html><body></body></html>");
globalThis.window = dom.window; globalThis.document = dom.window.document;
const { default: mermaid } = await import("mermaid");
const text = fs.readFileSync(process.argv[2], "utf8");
const blocks = [...text.matchAll(/```mermaid\\n([\\s\\S]*?)```/g)].map(m => m[1]);
if (!blocks.length) { console.error("no mermaid block"); process.exit(2); }
for (const block of blocks) {
  try { await mermaid.parse(block); }
  catch (e) { console.error(String(e.message ?? e)); process.exit(1); }
}
console.log(`${blocks.length} diagram(s) parsed`);
"""


@pytest.fixture(scope="session")
def mermaid_parser() -> Path:
    """Mermaid's own parser (npm `mermaid` under jsdom), installed once per session."""
    if shutil.which("node") is None or shutil.which("npm") is None:
        pytest.skip("node and npm are needed to parse Mermaid diagrams")
    default = Path.home() / ".cache" / "ml-compose" / "mermaid"
    cache = Path(os.environ.get("ML_COMPOSE_NPM_CACHE", default))
    cache.mkdir(parents=True, exist_ok=True)
    if not (cache / "node_modules" / "mermaid").exists():
        run(
            "npm", "install", "--no-save", "--silent", "--prefix", cache,
            f"mermaid@{MERMAID_VERSION}", "jsdom", cwd=cache, timeout=600,
        )  # fmt: skip
    script = cache / "parse.mjs"
    script.write_text(PARSE_JS, encoding="utf-8")
    return script


def markdown_files(project: Baked) -> list[Path]:
    return [project.path / "README.md", *sorted((project.path / "docs").rglob("*.md"))]


@pytest.mark.parametrize("name", list(SUPPORTED))
def test_docs_render_cleanly(name: str, bake, mermaid_parser: Path) -> None:  # type: ignore[no-untyped-def]
    project = bake(**SUPPORTED[name])
    result = project.run("node", str(mermaid_parser), str(project.path / "README.md"), check=False)
    assert result.returncode == 0, f"{name}: Mermaid does not parse: {result.stderr}"

    for page in markdown_files(project):
        text = page.read_text(encoding="utf-8")
        assert "cookiecutter." not in text and "{%" not in text, f"{page.name}: Jinja left over"
        for target in re.findall(r"\]\(((?!https?://|#|mailto:)[^)\s]+)\)", text):
            path = (page.parent / target.split("#")[0]).resolve()
            assert path.exists(), f"{page.relative_to(project.path)} links to missing {target}"

    readme = project.read("README.md")
    answers = project.context
    assert ("redis" in readme.split("## Architecture")[1].split("## Daily loop")[0]) == bool(
        answers["use_redis_cache"]
    ), "diagram and use_redis_cache disagree"
    monitoring = answers["monitoring"] == "prometheus-grafana"
    assert ("grafana" in readme) == monitoring
    if answers["compute"] == "cuda":
        assert f"CUDA {answers['cuda_version']}" in readme


def test_example_request_matches_the_schema(bake) -> None:  # type: ignore[no-untyped-def]
    project = bake()
    example = json.loads(project.read("docs/examples/transaction.json"))
    schema = project.read(f"src/{project.package}/schema.py")
    declared = re.findall(r'Feature\(\s*"(\w+)"', schema)
    assert declared and list(example) == declared, "docs/examples/transaction.json is stale"
