"""`/docs` renders without internet: the Swagger UI assets come from the app itself, and a real
headless browser (Debian's chromium) shows the operations. Chromium has no network here except
the server on 127.0.0.1, so a CDN reference would leave the page blank."""

from __future__ import annotations

import shutil
import subprocess
import urllib.request
from pathlib import Path

import pytest

from .private_services import missing_binary

BROWSERS = ("chromium", "chromium-browser", "google-chrome")


def _browser() -> str:
    for name in BROWSERS:
        if path := shutil.which(name):
            return path
    return missing_binary("chromium", "chromium")


@pytest.mark.slow
def test_docs_page_lists_the_operations_offline(served_url: str, tmp_path: Path) -> None:
    browser = _browser()
    url = served_url
    with urllib.request.urlopen(f"{url}/docs", timeout=10) as response:
        html = response.read().decode()
    assert "//cdn." not in html and "https://" not in html, html
    profile = tmp_path / "profile"
    result = subprocess.run(
        [
            browser,
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            f"--user-data-dir={profile}",
            "--virtual-time-budget=15000",
            "--dump-dom",
            f"{url}/docs",
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    dom = result.stdout
    assert result.returncode == 0, result.stderr[-2000:]
    assert "swagger-ui" in dom and "opblock" in dom, dom[:2000]
    for path in ("/predict", "/predict/batch", "/invocations", "/v2/models/{name}/infer"):
        assert f'data-path="{path}"' in dom or f">{path}<" in dom, path
