"""The production edge (nginx/ of a generated project) run by the host's real nginx in front of
a stand-in backend that answers 200 to everything: what is measured is nginx's own behaviour
(rate limits, refused paths), not serving's. The stand-in counts what got through.

The configuration is the generated one, with only what ties it to Compose rewritten: the port,
the upstream address (an IP: no resolver needed) and the absolute paths of its includes and
temporary files.
"""

from __future__ import annotations

import http.server
import shutil
import socket
import subprocess
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from tests.conftest import Baked
from tests.serving_routes import concrete, scoring_routes

NGINX = shutil.which("nginx") or "/usr/sbin/nginx"
# nginx/serving.conf: 100 requests a second per client, bursts of 200 more.
RATE, BURST = 100, 200


class _Backend(http.server.ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 256  # the default 5 drops connections under a burst
    seen: list[str]

    def handle_error(self, *_: object) -> None:
        pass  # nginx closing an idle keep-alive connection


class _Answer(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def _ok(self) -> None:
        length = int(self.headers.get("content-length") or 0)
        self.rfile.read(length)
        self.server.seen.append(self.path)  # type: ignore[attr-defined]
        self.send_response(200)
        self.send_header("content-length", "2")
        self.end_headers()
        self.wfile.write(b"{}")

    do_GET = do_POST = _ok

    def log_message(self, *_: object) -> None:
        pass


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Edge:
    def __init__(self, url: str, backend: _Backend) -> None:
        self.url, self.backend = url, backend

    def send(self, method: str, path: str) -> int:
        body = b"{}" if method == "POST" else None
        request = urllib.request.Request(self.url + path, data=body, method=method)
        request.add_header("content-type", "application/json")
        try:
            with urllib.request.urlopen(request, timeout=10) as answer:
                return int(answer.status)
        except urllib.error.HTTPError as error:
            return int(error.code)

    def burst(self, path: str, count: int) -> tuple[list[int], float]:
        start = time.monotonic()
        with ThreadPoolExecutor(max_workers=24) as pool:
            statuses = list(pool.map(lambda _: self.send("POST", path), range(count)))
        return statuses, time.monotonic() - start


@pytest.fixture(scope="module")
def edge(
    bake_session: Callable[..., Baked], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Edge]:
    assert Path(NGINX).exists(), "nginx is not installed (CI installs Debian's nginx-light)"
    baked = bake_session()
    root = tmp_path_factory.mktemp("edge")
    backend = _Backend(("127.0.0.1", 0), _Answer)
    backend.seen = []
    threading.Thread(target=backend.serve_forever, daemon=True).start()
    port = _free_port()
    (root / "conf.d").mkdir()
    main = baked.read("nginx/nginx.conf").replace("/tmp/", f"{root}/")
    main = main.replace("/etc/nginx/conf.d/", f"{root}/conf.d/")
    serving = baked.read("nginx/serving.conf")
    serving = serving.replace("listen 8080;", f"listen 127.0.0.1:{port};")
    serving = serving.replace("serving:8000", f"127.0.0.1:{backend.server_address[1]}")
    serving = serving.replace("/etc/nginx/admin-allow.conf", f"{root}/admin-allow.conf")
    assert f"127.0.0.1:{port}" in serving and str(root) in serving and str(root) in main
    (root / "nginx.conf").write_text(main)
    (root / "conf.d" / "serving.conf").write_text(serving)
    shutil.copy(baked.path / "nginx" / "admin-allow.conf", root / "admin-allow.conf")
    log = (root / "nginx.log").open("wb")  # a pipe nobody reads would fill and stall nginx
    process = subprocess.Popen(
        [NGINX, "-p", str(root), "-c", str(root / "nginx.conf"), "-g", "daemon off;"],
        stdout=log,
        stderr=log,
    )
    edge = Edge(f"http://127.0.0.1:{port}", backend)
    try:
        for _ in range(100):
            try:
                if edge.send("GET", "/nginx-health") == 200:
                    break
            except OSError:
                time.sleep(0.1)
        else:
            process.kill()
            raise AssertionError((root / "nginx.log").read_text())
        yield edge
    finally:
        process.terminate()
        process.wait(timeout=10)
        log.close()
        backend.shutdown()


def _routes(bake_session: Callable[..., Baked]) -> list[str]:
    baked = bake_session()
    return sorted(scoring_routes(baked.path, baked.package))


@pytest.fixture(scope="module")
def routes(bake_session: Callable[..., Baked]) -> list[str]:
    found = _routes(bake_session)
    assert {"/predict", "/invocations", "/v2/models/{name}/infer"} <= set(found), found
    return found


def test_every_scoring_route_is_rate_limited(edge: Edge, routes: list[str]) -> None:
    """Each POST route that runs the model, read from the app's route modules, answers 429
    beyond the burst, and lets through no more than the limit allows."""
    for route in routes:
        time.sleep(BURST / RATE + 0.5)  # the previous route's burst drained: the bucket is full
        path = concrete(route)
        statuses, seconds = edge.burst(path, 3 * BURST)
        passed = statuses.count(200)
        assert set(statuses) <= {200, 429}, (route, sorted(set(statuses)))
        assert BURST + RATE * seconds < len(statuses), f"{route}: sending took {seconds:.1f} s"
        assert statuses.count(429) > 0, f"{route} is not rate-limited at the edge"
        assert passed <= 1.05 * (BURST + RATE * seconds) + 5, (route, passed, seconds)


def test_one_limit_per_client_across_routes(edge: Edge, routes: list[str]) -> None:
    """The routes share one bucket: spending the burst on one leaves none for the others."""
    time.sleep(BURST / RATE + 0.5)
    statuses, _ = edge.burst("/predict", 2 * BURST)
    assert statuses.count(429) > 0
    for route in routes:
        # 30 at once: more than the bucket refills (100/s) while they are sent.
        statuses, _ = edge.burst(concrete(route), 30)
        assert statuses.count(429) > 0, route


def test_health_and_metadata_are_not_limited(edge: Edge) -> None:
    time.sleep(BURST / RATE + 0.5)
    statuses = [edge.send("GET", "/health") for _ in range(2 * BURST)]
    assert set(statuses) == {200}


def test_edge_refuses_admin_and_metrics(edge: Edge) -> None:
    seen = len(edge.backend.seen)
    for path in ("/admin/reload", "/predict/../admin/reload", "//admin/reload", "/%61dmin/reload"):
        assert edge.send("POST", path) == 403, path
    assert edge.send("GET", "/metrics") == 404
    assert len(edge.backend.seen) == seen, "a refused request reached the backend"
