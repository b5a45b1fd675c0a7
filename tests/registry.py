"""A real image registry for the pin-images tests: Debian's `docker-registry` (distribution 2.8,
the reference implementation of the Registry HTTP API v2) on a free port of 127.0.0.1, with
its storage in a temporary folder. Images get into it with `docker push` (container tier) or
through the same API a push uses (`push_image`: blobs, then the manifest). `base_image_slots`
lists where a generated project names base images, read without docker/pin_images.py.
"""

from __future__ import annotations

import base64
import hashlib
import http.server
import json
import re
import secrets
import shutil
import socket
import subprocess
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import yaml

MANIFEST_V2 = "application/vnd.docker.distribution.manifest.v2+json"


def registry_binary() -> str:
    found = shutil.which("docker-registry")
    if not found:
        pytest.skip("docker-registry is not installed (apt-get install docker-registry)")
    return found


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextmanager
def local_registry(folder: Path, storage: Path | None = None, auth: str = "") -> Iterator[str]:
    """The registry's base URL (http://127.0.0.1:<port>) while the context is open; `storage`
    (default folder/storage) may be shared with another registry, `auth` is a YAML `auth:`
    mapping (default: none, anyone pushes and pulls)."""
    port = _free_port()
    folder.mkdir(parents=True, exist_ok=True)
    config = folder / "config.yml"
    config.write_text(
        "version: 0.1\n"
        "log: {level: warn}\n"
        f"storage: {{filesystem: {{rootdirectory: {storage or folder / 'storage'}}}}}\n"
        f"http: {{addr: '127.0.0.1:{port}'}}\n" + (f"auth: {auth}\n" if auth else ""),
        encoding="utf-8",
    )
    log = (folder / "registry.log").open("wb")
    process = subprocess.Popen([registry_binary(), "serve", str(config)], stdout=log, stderr=log)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                with urllib.request.urlopen(f"{base}/v2/", timeout=2):
                    break
            except urllib.error.HTTPError as error:
                if error.code == 401:  # up, and asking for a token
                    break
                raise
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


@dataclass
class TokenService:
    """The token service of Docker's token flow (what auth.docker.io is for Docker Hub): signs
    pull tokens for any anonymous caller, with a throw-away key whose certificate the registry
    trusts. `requests` records each query (service, scope) and whether it carried credentials."""

    realm: str
    key: Path
    certificate_der: bytes
    requests: list[dict[str, str]] = field(default_factory=list)

    def token(self, service: str, scope: str) -> str:
        _kind, name, _actions = scope.split(":")
        now = int(time.time())
        header = {
            "alg": "RS256",
            "typ": "JWT",
            "x5c": [base64.b64encode(self.certificate_der).decode()],
        }
        claims = {
            "iss": TOKEN_ISSUER, "sub": "", "aud": service, "iat": now, "nbf": now - 10,
            "exp": now + 300, "jti": secrets.token_hex(8),
            "access": [{"type": "repository", "name": name, "actions": ["pull"]}],
        }  # fmt: skip
        signing_input = f"{_b64url(json.dumps(header))}.{_b64url(json.dumps(claims))}"
        signature = subprocess.run(
            ["openssl", "dgst", "-sha256", "-sign", str(self.key)],
            input=signing_input.encode(), capture_output=True, check=True,
        ).stdout  # fmt: skip
        return f"{signing_input}.{_b64url(signature)}"


TOKEN_ISSUER = "pin-images-test-issuer"
TOKEN_SERVICE = "pin-images-test-registry"


def _b64url(data: str | bytes) -> str:
    raw = data.encode() if isinstance(data, str) else data
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


@contextmanager
def token_registry(folder: Path, storage: Path) -> Iterator[tuple[str, TokenService]]:
    """A registry over `storage` that answers 401 with a Bearer challenge until the client
    shows a token from the TokenService (Docker Hub's and ghcr.io's anonymous pull flow)."""
    folder.mkdir(parents=True, exist_ok=True)
    key, certificate = folder / "key.pem", folder / "certificate.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
         "-subj", "/CN=pin-images-test", "-keyout", str(key), "-out", str(certificate)],
        capture_output=True, check=True,
    )  # fmt: skip
    der = subprocess.run(
        ["openssl", "x509", "-in", str(certificate), "-outform", "DER"],
        capture_output=True, check=True,
    ).stdout  # fmt: skip
    port = _free_port()
    service = TokenService(f"http://127.0.0.1:{port}/token", key, der)

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 (http.server's name)
            query = dict(urllib.parse.parse_qsl(urllib.parse.urlsplit(self.path).query))
            service.requests.append(
                query | {"authorization": self.headers.get("Authorization", "")}
            )
            body = json.dumps({"token": service.token(query["service"], query["scope"])}).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", port), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    auth = (
        f"{{token: {{realm: '{service.realm}', service: {TOKEN_SERVICE}, "
        f"issuer: {TOKEN_ISSUER}, rootcertbundle: '{certificate}'}}}}"
    )
    try:
        with local_registry(folder / "registry", storage=storage, auth=auth) as base:
            yield base, service
    finally:
        server.shutdown()
        server.server_close()


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


def repository(ref: str) -> tuple[str, str]:
    """(repository, tag) of a reference as a registry names them (Docker Hub: library/)."""
    name, tag = ref.split("@")[0].rsplit(":", 1)
    first, _, rest = name.partition("/")
    if rest and ("." in first or ":" in first):
        name = rest
    elif not rest:
        name = f"library/{name}"
    return name, tag


def base_image_slots(project: Path) -> list[tuple[str, str]]:
    """(file, reference) for every place a base image is named, read without the script."""
    slots: list[tuple[str, str]] = []
    dockerfile = (project / "docker/Dockerfile").read_text(encoding="utf-8")
    slots += [
        ("docker/Dockerfile", m) for m in re.findall(r"^ARG \w+_IMAGE=(\S+)", dockerfile, re.M)
    ]
    for name in ("compose.yaml", "compose.override.yaml", "compose.prod.yaml"):
        text = (project / name).read_text(encoding="utf-8")
        slots += [(name, m) for m in re.findall(r"\$\{\w+_IMAGE:-([^}]+)\}", text)]
        for service in (yaml.safe_load(text).get("services") or {}).values():
            if "image" in service and "build" not in service:
                slots.append((name, service["image"]))
    for name in (".env", ".env.example"):
        text = (project / name).read_text(encoding="utf-8")
        slots += [(name, m) for m in re.findall(r"^\w+_IMAGE=(\S+)", text, re.M)]
    for path in sorted((project / "deploy").rglob("*.yaml")):
        for ref in re.findall(r"^\s*-?\s*image:\s*(\S+)", path.read_text(encoding="utf-8"), re.M):
            if not ref.startswith(project.name + "-"):
                slots.append((str(path.relative_to(project)), ref))
    return slots
