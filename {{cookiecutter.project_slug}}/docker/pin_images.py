"""`make pin-images`: every base image reference of the project, pinned as `name:tag@sha256:…`.

Each tag is resolved to the digest its registry serves now (Docker Registry HTTP API v2: a
HEAD of the manifest, `Docker-Content-Digest`; for a multi-platform image that is the digest
of its index, so every platform stays pullable), and the reference is rewritten in place. A
reference already pinned is resolved again by its tag: re-running refreshes the pins and
changes nothing when no tag moved. Every reference is resolved before any file is written.

Anonymous pulls need a token on Docker Hub, ghcr.io and most registries: the registry's
`WWW-Authenticate` challenge names the token service, which is asked without credentials.
PIN_IMAGES_REGISTRY=http(s)://host[:port] resolves every reference through that one registry
instead (a mirror or pull-through cache holding the same repositories).

Standard library only: the host's python3 runs it without the project's environment.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass
from pathlib import Path

PROJECT_SLUG = "{{ cookiecutter.project_slug }}"
# The one table of where base images are named: file patterns (relative to the project root)
# and the pattern of a reference in them (group `ref`). Images the project builds itself
# (`<slug>-serve:...`) and references that use a variable are left alone.
LOCATIONS: tuple[tuple[str, re.Pattern[str]], ...] = (
    ("docker/Dockerfile", re.compile(r"^ARG [A-Z0-9_]*IMAGE=(?P<ref>\S+)", re.M)),
    ("compose*.yaml", re.compile(r"^\s*image:\s*[\"']?(?P<ref>[^\s\"'#]+)", re.M)),
    ("compose*.yaml", re.compile(r"\$\{[A-Z0-9_]*IMAGE:-(?P<ref>[^}\s]+)\}")),
    (".env", re.compile(r"^[A-Z0-9_]*IMAGE=(?P<ref>\S+)", re.M)),
    (".env.example", re.compile(r"^[A-Z0-9_]*IMAGE=(?P<ref>\S+)", re.M)),
    ("deploy/k8s/**/*.yaml", re.compile(r"^\s*-?\s*image:\s*[\"']?(?P<ref>[^\s\"'#]+)", re.M)),
)
MANIFEST_TYPES = ", ".join(
    (
        "application/vnd.oci.image.index.v1+json",
        "application/vnd.docker.distribution.manifest.list.v2+json",
        "application/vnd.oci.image.manifest.v1+json",
        "application/vnd.docker.distribution.manifest.v2+json",
    )
)
DOCKER_HUB = "docker.io"
TIMEOUT = 30


class PinError(Exception):
    """A reference that cannot be resolved: one line naming it and why."""


@dataclass(frozen=True)
class Reference:
    registry: str  # docker.io, ghcr.io, host:port
    repository: str  # library/python, astral-sh/uv
    tag: str
    written: str  # the name as the file spells it, without tag and digest

    @classmethod
    def parse(cls, text: str) -> Reference:
        name = text.split("@", 1)[0]
        head, _, last = name.rpartition("/")
        if ":" in last:
            last, tag = last.split(":", 1)
        elif "@" in text:
            raise PinError(f"{text}: pinned without a tag, so there is nothing to refresh it by")
        else:
            tag = "latest"
        written = f"{head}/{last}" if head else last
        first = written.split("/", 1)[0]
        if "/" in written and ("." in first or ":" in first or first == "localhost"):
            registry, repository = written.split("/", 1)
        else:
            registry, repository = DOCKER_HUB, written
        if registry == DOCKER_HUB and "/" not in repository:
            repository = f"library/{repository}"
        return cls(registry, repository, tag, written)

    def pinned(self, digest: str) -> str:
        return f"{self.written}:{self.tag}@{digest}"


def registry_base(registry: str) -> str:
    if override := os.environ.get("PIN_IMAGES_REGISTRY"):
        return override.rstrip("/")
    return "https://registry-1.docker.io" if registry == DOCKER_HUB else f"https://{registry}"


def _challenge(header: str) -> dict[str, str]:
    """The parameters of a `Bearer realm="…",service="…",scope="…"` challenge."""
    return dict(re.findall(r'(\w+)="([^"]*)"', header))


def _token(challenge: str) -> str:
    params = _challenge(challenge)
    realm = params.pop("realm", "")
    if not challenge.lower().startswith("bearer") or not realm:
        raise PinError(f"unsupported authentication challenge {challenge!r}")
    with urllib.request.urlopen(f"{realm}?{urllib.parse.urlencode(params)}", timeout=TIMEOUT) as r:
        body = json.load(r)
    return str(body.get("token") or body.get("access_token") or "")


def resolve(ref: Reference) -> str:
    """The digest the registry serves for ref's tag."""
    url = f"{registry_base(ref.registry)}/v2/{ref.repository}/manifests/{ref.tag}"
    headers = {"Accept": MANIFEST_TYPES}
    for attempt in range(2):
        request = urllib.request.Request(url, method="HEAD", headers=headers)
        try:
            with urllib.request.urlopen(request, timeout=TIMEOUT) as response:
                digest = str(response.headers.get("Docker-Content-Digest") or "")
                if not re.fullmatch(r"sha256:[0-9a-f]{64}", digest):
                    raise PinError(f"{url}: no Docker-Content-Digest in the answer")
                return digest
        except urllib.error.HTTPError as error:
            challenge = error.headers.get("WWW-Authenticate", "")
            if error.code == 401 and attempt == 0 and challenge:
                headers["Authorization"] = f"Bearer {_token(challenge)}"
                continue
            raise PinError(f"{url}: HTTP {error.code} {error.reason}") from None
        except (urllib.error.URLError, OSError) as error:
            raise PinError(f"{url}: {getattr(error, 'reason', error)}") from None
    raise PinError(f"{url}: refused after authentication")


def base_image(ref: str) -> bool:
    return "$" not in ref and not ref.startswith(f"{PROJECT_SLUG}-")


def files(root: Path) -> dict[Path, list[re.Pattern[str]]]:
    """Every file that names base images, with the patterns of its references."""
    found: dict[Path, list[re.Pattern[str]]] = {}
    for pattern, regex in LOCATIONS:
        for path in sorted(root.glob(pattern)):
            found.setdefault(path, []).append(regex)
    return found


def references(text: str, regexes: list[re.Pattern[str]]) -> list[str]:
    refs = [m.group("ref") for regex in regexes for m in regex.finditer(text)]
    return list(dict.fromkeys(ref for ref in refs if base_image(ref)))


def rewrite(text: str, regexes: list[re.Pattern[str]], pins: dict[str, str]) -> str:
    """Each matched reference replaced by its pin; the rest of the file (comments) unchanged."""

    def pin(match: re.Match[str]) -> str:
        ref = match.group("ref")
        if not base_image(ref):
            return match.group(0)
        start, end = match.span("ref")
        offset = match.start()
        whole = match.group(0)
        return whole[: start - offset] + pins[ref] + whole[end - offset :]

    for regex in regexes:
        text = regex.sub(pin, text)
    return text


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--root", type=Path, default=Path(__file__).resolve().parents[1])
    args = parser.parse_args(argv)
    found = {path: (path.read_text(encoding="utf-8"), rx) for path, rx in files(args.root).items()}
    pins: dict[str, str] = {}
    try:
        for text, regexes in found.values():
            for ref in references(text, regexes):
                if ref not in pins:
                    parsed = Reference.parse(ref)
                    pins[ref] = parsed.pinned(resolve(parsed))
    except PinError as error:
        print(f"pin-images: {error}; nothing was changed", file=sys.stderr)
        return 1
    for path, (text, regexes) in found.items():
        for ref in references(text, regexes):
            state = "current" if ref == pins[ref] else "pinned "
            print(f"{state} {path.relative_to(args.root)}: {pins[ref]}")
        if (new := rewrite(text, regexes, pins)) != text:
            path.write_text(new, encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
