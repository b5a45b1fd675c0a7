"""Request bodies as clients send them (serving/request_bodies.py): gzip and deflate bodies on
every protocol score like plain ones, tritonclient's request compression works, a zip bomb is
a 413 without the memory, other encodings a 415, a leading BOM is accepted; on a real server a
client hanging up mid-body is a 499 in the metrics and one log line, a slow one a 408."""

from __future__ import annotations

import gzip
import json
import re
import select
import socket
import time
import tracemalloc
import urllib.request
import zlib
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from fastapi.testclient import TestClient

from {{ cookiecutter.package_name }}.serving.request_bodies import Inflater, Rejected

from .test_mlflow_protocol import sample_records
from .test_open_inference import NUMPY, tensors

RECORDS = sample_records(8)
BODY_TIMEOUT = 2.0  # REQUEST_BODY_TIMEOUT_SECONDS of the served app below
ENCODERS: dict[str, Callable[[bytes], bytes]] = {
    "gzip": gzip.compress,
    "deflate": zlib.compress,  # RFC 9110's deflate: the zlib format
    "raw deflate": lambda data: zlib.compress(data, wbits=-zlib.MAX_WBITS),
    "bom": lambda data: b"\xef\xbb\xbf" + data,
}


def _headers(encoding: str) -> dict[str, str]:
    headers = {"content-type": "application/json"}
    if encoding in ("gzip", "deflate", "raw deflate"):
        headers["content-encoding"] = encoding.removeprefix("raw ")
    return headers


def _routes(model_name: str) -> dict[str, tuple[str, dict[str, Any]]]:
    return {
        "predict": ("/predict", RECORDS[0]),
        "invocations": ("/invocations", {"dataframe_records": RECORDS}),
        "infer": (f"/v2/models/{model_name}/infer", {"inputs": tensors(RECORDS)}),
    }


def _comparable(answer: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in answer.items() if k not in ("request_id", "id")}


@pytest.mark.parametrize("route", ["predict", "invocations", "infer"])
@pytest.mark.parametrize("encoding", list(ENCODERS))
def test_encoded_body_answers_as_plain(
    app_client: TestClient, registered_model: Any, route: str, encoding: str
) -> None:
    path, payload = _routes(registered_model.name)[route]
    body = json.dumps(payload).encode()
    plain = app_client.post(path, content=body, headers=_headers("identity"))
    assert plain.status_code == 200, plain.text
    encoded = app_client.post(path, content=ENCODERS[encoding](body), headers=_headers(encoding))
    assert encoded.status_code == 200, encoded.text
    assert _comparable(encoded.json()) == _comparable(plain.json())


def test_unknown_encoding_is_415_naming_it(app_client: TestClient, registered_model: Any) -> None:
    for route, (path, payload) in _routes(registered_model.name).items():
        response = app_client.post(path, json=payload, headers={"content-encoding": "br"})
        assert response.status_code == 415, (route, response.text)
        message = response.json()["error" if route == "infer" else "message"]
        assert "Content-Encoding 'br' is not supported" in message
    identity = app_client.post(
        "/predict", json=RECORDS[0], headers={"content-encoding": "identity"}
    )
    assert identity.status_code == 200, identity.text


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        (b"not gzip at all", "invalid gzip body"),
        (gzip.compress(json.dumps(RECORDS[0]).encode())[:-12], "invalid gzip body: truncated"),
    ],
)
def test_broken_gzip_is_400(app_client: TestClient, body: bytes, reason: str) -> None:
    response = app_client.post("/predict", content=body, headers=_headers("gzip"))
    assert response.status_code == 400 and reason in response.json()["message"], response.text


@pytest.mark.parametrize("encoding", ["gzip", "deflate", "raw deflate"])
def test_a_body_split_anywhere_decodes_the_same(encoding: str) -> None:
    """However the network cuts the encoded body, the same bytes come out: a byte at a time, the
    zlib header split, output crossing the decoder's steps, several gzip members."""
    data = json.dumps({"records": RECORDS * 400}).encode()  # several of the decoder's steps
    encoded = ENCODERS[encoding](data)
    if encoding == "gzip":
        encoded, data = encoded + ENCODERS["gzip"](b"[]"), data + b"[]"
    for size in (1, 2, 3, 1000, len(encoded)):
        inflater = Inflater(_headers(encoding)["content-encoding"].encode(), len(data))
        parts: list[bytes] = []
        for start in range(0, len(encoded), size):
            parts += inflater.feed(encoded[start : start + size])
        assert b"".join(parts + inflater.finish()) == data, size
    with pytest.raises(Rejected) as over:
        Inflater(b"gzip", len(data) - 1).feed(ENCODERS["gzip"](data))
    assert over.value.status == 413


def test_zip_bomb_is_413_in_flat_memory(app_client: TestClient) -> None:
    """10 MB of zeros in 10 kB of gzip: refused after MAX_BODY_BYTES (2 MB) of output, never
    inflated whole (that alone would peak at 10 MB)."""
    bomb = gzip.compress(b"0" * 10_000_000)
    assert len(bomb) < 20_000
    tracemalloc.start()
    try:
        response = app_client.post("/predict", content=bomb, headers=_headers("gzip"))
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert response.status_code == 413, response.text
    assert "over 2000000 bytes once decompressed" in response.json()["message"]
    assert peak < 3_000_000, f"peak {peak / 1e6:.1f} MB while refusing the bomb"


# --- a real server: tritonclient's compression, hang-ups, slow clients ----------------------


@pytest.fixture(scope="module")
def served(
    registered_model: Any, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[str, Path]]:
    """`serve` with a short body timeout; yields its URL and its log file."""
    from .protocol_servers import our_server

    workdir = tmp_path_factory.mktemp("bodies")
    log = workdir / "server.log"
    timeout = str(BODY_TIMEOUT)
    with our_server(
        registered_model, workdir, log=log, REQUEST_BODY_TIMEOUT_SECONDS=timeout
    ) as url:
        yield url, log


def _requests_total(url: str) -> dict[tuple[str, str], float]:
    """`http_requests_total` by (handler, status)."""
    with urllib.request.urlopen(f"{url}/metrics", timeout=5) as response:
        text = response.read().decode()
    counts: dict[tuple[str, str], float] = {}
    for line in text.splitlines():
        if line.startswith("http_requests_total{"):
            labels = dict(re.findall(r'(\w+)="([^"]*)"', line))
            counts[labels["handler"], labels["status"]] = float(line.rsplit(" ", 1)[1])
    return counts


def _connect(url: str) -> socket.socket:
    host, port = url.removeprefix("http://").split(":")
    return socket.create_connection((host, int(port)), timeout=10)


def _post_head(path: str, length: int) -> bytes:
    return (
        f"POST {path} HTTP/1.1\r\nHost: test\r\nContent-Type: application/json\r\n"
        f"Content-Length: {length}\r\n\r\n"
    ).encode()


@pytest.mark.slow
@pytest.mark.parametrize("algorithm", ["gzip", "deflate"])
def test_tritonclient_request_compression(
    registered_model: Any, served: tuple[str, Path], algorithm: str
) -> None:
    import tritonclient.http as httpclient

    url, _ = served
    client = httpclient.InferenceServerClient(url.removeprefix("http://"))
    inputs = []
    for tensor in tensors(RECORDS):
        infer_input = httpclient.InferInput(tensor["name"], tensor["shape"], tensor["datatype"])
        values = np.array(tensor["data"], dtype=NUMPY[tensor["datatype"]])
        infer_input.set_data_from_numpy(values, binary_data=False)
        inputs.append(infer_input)
    outputs = [httpclient.InferRequestedOutput("probabilities", binary_data=False)]
    plain = client.infer(registered_model.name, inputs, outputs=outputs)
    compressed = client.infer(
        registered_model.name, inputs, outputs=outputs, request_compression_algorithm=algorithm
    )
    np.testing.assert_array_equal(
        compressed.as_numpy("probabilities"), plain.as_numpy("probabilities")
    )
    client.close()


@pytest.mark.slow
def test_hang_up_mid_body_is_499_without_traceback(served: tuple[str, Path]) -> None:
    url, log = served
    before = _requests_total(url).get(("/predict", "499"), 0.0)
    with _connect(url) as sock:
        sock.sendall(_post_head("/predict", 1000) + b'{"amount": 12')
    # the server sees the hang-up at once; its counters follow
    deadline = time.monotonic() + 10
    while (counts := _requests_total(url)).get(("/predict", "499"), 0.0) < before + 1:
        assert time.monotonic() < deadline, f"no 499 counted: {counts}"
        time.sleep(0.1)
    # (/ready answers 503 while the model loads: not this request)
    assert [key for key in counts if key[0] == "/predict" and key[1].startswith("5")] == []
    text = log.read_text(encoding="utf-8")
    assert "Traceback" not in text and "Exception in ASGI application" not in text, text
    lines = [line for line in text.splitlines() if "hung up mid-body" in line]
    assert len(lines) == 1 and "POST /predict -> 499" in lines[0], text


@pytest.mark.slow
def test_slow_body_is_408_within_the_timeout(served: tuple[str, Path]) -> None:
    """A byte every 0.5 s: answered 408 and closed once the timeout is up, however long the
    declared body still is."""
    url, _ = served
    started = time.monotonic()
    answer = b""
    with _connect(url) as sock:
        sock.sendall(_post_head("/predict", 1000) + b"{")
        while time.monotonic() - started < BODY_TIMEOUT + 5:
            readable, _, _ = select.select([sock], [], [], 0.5)
            if readable:
                chunk = sock.recv(65536)
                if not chunk:  # closed by the server after the answer
                    break
                answer += chunk
            else:
                sock.sendall(b" ")
        elapsed = time.monotonic() - started
    assert answer.startswith(b"HTTP/1.1 408 "), answer
    assert b"request body not received within 2.0s" in answer
    assert BODY_TIMEOUT <= elapsed < BODY_TIMEOUT + 1.5, elapsed
    assert _requests_total(url).get(("/predict", "408"), 0) >= 1
