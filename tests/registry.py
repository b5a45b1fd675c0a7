"""A real image registry for the pin-images tests: Debian's `docker-registry` (distribution 2.8,
the reference implementation of the Registry HTTP API v2) on a free port of 127.0.0.1, with
its storage in a temporary folder. Images get into it with `docker push` (container tier) or
through the same API a push uses (`push_image`: blobs, then the manifest).
"""

from __future__ import annotations

import hashlib
import json
import shutil
import socket
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

MANIFEST_V2 = "application/vnd.docker.distribution.manifest.v2+json"


def registry_binary() -> str:
    found = shutil.which("docker-registry") or shutil.which("registry", path="/usr/bin")
    if not found:
        pytest.skip("docker-registry is not installed (apt-get install docker-registry)")
    return found


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextmanager
def local_registry(folder: Path) -> Iterator[str]:
    """The registry's base URL (http://127.0.0.1:<port>) while the context is open."""
    port = _free_port()
    folder.mkdir(parents=True, exist_ok=True)
    config = folder / "config.yml"
    config.write_text(
        "version: 0.1\n"
        "log: {level: warn}\n"
        f"storage: {{filesystem: {{rootdirectory: {folder / 'storage'}}}}}\n"
        f"http: {{addr: '127.0.0.1:{port}'}}\n",
        encoding="utf-8",
    )
    log = (folder / "registry.log").open("wb")
    process = subprocess.Popen([registry_binary(), "serve", str(config)], stdout=log, stderr=log)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                with urllib.request.urlopen(f"{base}/v2/", timeout=2) as response:
                    if response.status == 200:
                        break
            except (urllib.error.URLError, OSError):
                if process.poll() is not None or time.monotonic() > deadline:
                    raise AssertionError(
                        f"docker-registry did not start: {(folder / 'registry.log').read_text()}"
                    ) from None
                time.sleep(0.2)
        yield base
    finally:
        process.terminate()
        process.wait(timeout=15)
        log.close()


def _upload_blob(base: str, repository: str, data: bytes) -> str:
    digest = "sha256:" + hashlib.sha256(data).hexdigest()
    start = urllib.request.Request(f"{base}/v2/{repository}/blobs/uploads/", method="POST")
    with urllib.request.urlopen(start, timeout=30) as response:
        location = response.headers["Location"]
    if location.startswith("/"):
        location = base + location
    separator = "&" if "?" in location else "?"
    put = urllib.request.Request(
        f"{location}{separator}digest={digest}",
        data=data,
        method="PUT",
        headers={"Content-Type": "application/octet-stream"},
    )
    with urllib.request.urlopen(put, timeout=30):
        return digest


def push_image(base: str, repository: str, tag: str, content: str) -> str:
    """A one-layer image under repository:tag (what `docker push` uploads); its digest."""
    layer = content.encode()
    config = json.dumps({"architecture": "amd64", "os": "linux", "content": content}).encode()
    manifest = json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": MANIFEST_V2,
            "config": {
                "mediaType": "application/vnd.docker.container.image.v1+json",
                "size": len(config),
                "digest": _upload_blob(base, repository, config),
            },
            "layers": [
                {
                    "mediaType": "application/vnd.docker.image.rootfs.diff.tar.gzip",
                    "size": len(layer),
                    "digest": _upload_blob(base, repository, layer),
                }
            ],
        }
    ).encode()
    put = urllib.request.Request(
        f"{base}/v2/{repository}/manifests/{tag}",
        data=manifest,
        method="PUT",
        headers={"Content-Type": MANIFEST_V2},
    )
    with urllib.request.urlopen(put, timeout=30) as response:
        return str(response.headers["Docker-Content-Digest"])


def served_digest(base: str, repository: str, tag: str) -> str:
    """The registry's own answer: Docker-Content-Digest of a HEAD of the manifest."""
    head = urllib.request.Request(
        f"{base}/v2/{repository}/manifests/{tag}", method="HEAD", headers={"Accept": MANIFEST_V2}
    )
    with urllib.request.urlopen(head, timeout=30) as response:
        return str(response.headers["Docker-Content-Digest"])
