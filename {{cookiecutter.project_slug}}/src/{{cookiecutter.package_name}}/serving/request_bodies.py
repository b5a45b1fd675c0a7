"""Request bodies as clients send them, read once in front of every route (`RequestBodies`).

* Size: more than `max_bytes` declared, streamed or once decompressed is a 413; a compressed
  body is inflated a piece at a time, never past `max_bytes` + 1 bytes (a zip bomb costs at
  most that much memory).
* `Content-Encoding`: `gzip` and `deflate` (zlib, or the raw deflate some clients send) are
  decoded, `identity` is nothing; any other, or two codings, is a 415 naming them.
* A leading UTF-8 byte-order mark is dropped (`mlflow models serve` accepts it too), except
  from binary bodies, whose leading JSON header's length the client declares.
* The whole body must arrive within `timeout_seconds`, else 408 and the connection is closed:
  without a proxy buffering bodies, a client sending a byte now and then would hold it open.
* A client that hangs up mid-body is answered 499 (nginx's convention, nobody reads it) so the
  request metrics count a client error, and logged in one line.

The routes then see the complete body, decoded: without `Content-Encoding`, with its own
`Content-Length`.
"""

from __future__ import annotations

import asyncio
import logging
import zlib

import orjson
from starlette.types import ASGIApp, Message, Receive, Scope, Send

log = logging.getLogger(__name__)

BOM = b"\xef\xbb\xbf"
CLIENT_CLOSED_REQUEST = 499  # nginx's status for a client that left before the answer
# zlib's wbits for each coding: 16 + 15 reads the gzip wrapper; deflate starts as zlib (RFC
# 9110) and falls back to raw deflate when the first two bytes are no zlib header.
CODINGS = {b"gzip": 16 + zlib.MAX_WBITS, b"x-gzip": 16 + zlib.MAX_WBITS, b"deflate": zlib.MAX_WBITS}
SPOKEN = "gzip, deflate, identity"
STEP = 64 * 1024  # decompressed bytes per zlib call
# Bodies whose first bytes are data, not text: a BOM there is not an encoding mark.
BINARY_HEADERS = (b"inference-header-content-length",)
BINARY_TYPES = (b"application/octet-stream",)


class Rejected(Exception):
    """A request answered by the middleware itself: status and one-line reason."""

    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason


class HungUp(Exception):
    """The client closed the connection before the body was complete."""


class Inflater:
    """One `Content-Encoding`, decoded incrementally with at most `limit` bytes of output."""

    def __init__(self, coding: bytes, limit: int) -> None:
        self.coding = coding.decode()
        self.limit = limit
        self.size = 0
        self._fed = 0
        self._wbits = CODINGS[coding]
        self._head = b""  # deflate: held until the first two bytes say zlib or raw
        self._stream: zlib._Decompress | None = None
        if self._wbits != zlib.MAX_WBITS:
            self._stream = zlib.decompressobj(self._wbits)

    def feed(self, data: bytes) -> list[bytes]:
        self._fed += len(data)
        if self._stream is None:
            self._head += data
            if len(self._head) < 2:
                return []
            data, self._head = self._head, b""
            cmf, flg = data[0], data[1]
            is_zlib = cmf & 0x0F == 8 and (cmf << 8 | flg) % 31 == 0
            self._stream = zlib.decompressobj(self._wbits if is_zlib else -zlib.MAX_WBITS)
        out: list[bytes] = []
        try:
            while True:
                # One byte past the limit tells it is exceeded; pieces of at most STEP bytes,
                # as one large piece costs twice its size while zlib fills it.
                wanted = min(self.limit - self.size + 1, STEP)
                piece = self._stream.decompress(data, wanted)
                self.size += len(piece)
                if self.size > self.limit:
                    raise Rejected(413, f"request body over {self.limit} bytes once decompressed")
                out.append(piece)
                if self._stream.eof:
                    if not (data := self._stream.unused_data):
                        break
                    if self.coding == "deflate":
                        raise Rejected(400, "invalid deflate body: data after its end")
                    self._stream = zlib.decompressobj(self._wbits)  # gzip: another member
                    continue
                data = self._stream.unconsumed_tail
                if not data and len(piece) < wanted:  # a full piece may leave output pending
                    break
        except zlib.error as error:
            raise Rejected(400, f"invalid {self.coding} body: {error}") from None
        return out

    def finish(self) -> list[bytes]:
        if not self._fed:  # an empty body: nothing was encoded
            return []
        if self._stream is None or not self._stream.eof:
            raise Rejected(400, f"invalid {self.coding} body: truncated")
        return []


def error_body(path: str, reason: str) -> bytes:
    """The error shape the route's clients decode: the Open Inference Protocol's `error`
    (tritonclient and KServe read it), elsewhere the app's `detail` and `message`."""
    if path.startswith("/v2/") or path == "/v2":
        return orjson.dumps({"error": reason})
    return orjson.dumps({"detail": reason, "message": reason})


class RequestBodies:
    """Pure ASGI middleware reading each HTTP request's body as the module docstring says.
    Added inside the request metrics' middleware, so that its 4xx answers are counted."""

    def __init__(self, app: ASGIApp, max_bytes: int, timeout_seconds: float) -> None:
        self.app = app
        self.max_bytes = max_bytes
        self.timeout_seconds = timeout_seconds

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        try:
            inflater, binary = self._inspect(scope["headers"])
            async with asyncio.timeout(self.timeout_seconds):
                body = await self._read(receive, inflater)
        except Rejected as rejected:
            await self._answer(scope, send, rejected.status, rejected.reason)
            return
        except TimeoutError:
            log.warning(
                "request body not received within %ss: %s %s -> 408",
                self.timeout_seconds,
                scope["method"],
                scope["path"],
            )
            reason = f"request body not received within {self.timeout_seconds}s"
            await self._answer(scope, send, 408, reason, close=True)
            return
        except HungUp as hung_up:
            log.warning(
                "client hung up mid-body (%s): %s %s -> %d",
                hung_up,
                scope["method"],
                scope["path"],
                CLIENT_CLOSED_REQUEST,
            )
            await self._answer(scope, send, CLIENT_CLOSED_REQUEST, "client closed the request")
            return
        bom = body.startswith(BOM) and not binary
        if bom:
            body = body[len(BOM) :]
        if inflater is not None or bom:
            scope = {**scope, "headers": _with_length(scope["headers"], len(body))}
        replayed = False

        async def replay() -> Message:
            nonlocal replayed
            if replayed:
                return await receive()  # after the body: only the disconnect remains
            replayed = True
            return {"type": "http.request", "body": body, "more_body": False}

        await self.app(scope, replay, send)

    def _inspect(self, headers: list[tuple[bytes, bytes]]) -> tuple[Inflater | None, bool]:
        """The request's decoder and whether its body is binary; rejects what the headers
        alone say is too large or undecodable."""
        inflater = None
        binary = False
        for name, value in headers:
            if name == b"content-length":
                if not value.isdigit():
                    raise Rejected(400, "invalid Content-Length header")
                if int(value) > self.max_bytes:
                    raise Rejected(413, f"request body over {self.max_bytes} bytes")
            elif name == b"content-encoding":
                codings = [c.strip().lower() for c in value.split(b",")]
                codings = [c for c in codings if c and c != b"identity"]
                if len(codings) > 1 or any(c not in CODINGS for c in codings):
                    named = b", ".join(codings).decode("latin-1")
                    reason = f"Content-Encoding {named!r} is not supported (one of {SPOKEN})"
                    raise Rejected(415, reason)
                if codings:
                    inflater = Inflater(codings[0], self.max_bytes)
            elif name in BINARY_HEADERS or (
                name == b"content-type" and value.split(b";")[0].strip().lower() in BINARY_TYPES
            ):
                binary = True
        return inflater, binary

    async def _read(self, receive: Receive, inflater: Inflater | None) -> bytes:
        parts: list[bytes] = []
        received = 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                raise HungUp(f"after {received} bytes")
            chunk = message.get("body", b"")
            received += len(chunk)
            if received > self.max_bytes:
                raise Rejected(413, f"request body over {self.max_bytes} bytes")
            if inflater is None:
                parts.append(chunk)
            else:
                parts += inflater.feed(chunk)
            if not message.get("more_body", False):
                break
        if inflater is not None:
            parts += inflater.finish()
        return parts[0] if len(parts) == 1 else b"".join(parts)

    @staticmethod
    async def _answer(
        scope: Scope, send: Send, status: int, reason: str, close: bool = False
    ) -> None:
        content = error_body(scope["path"], reason)
        headers = [
            (b"content-type", b"application/json"),
            (b"content-length", str(len(content)).encode()),
        ]
        if close:  # the rest of the body is not waited for
            headers.append((b"connection", b"close"))
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": content})


def _with_length(headers: list[tuple[bytes, bytes]], length: int) -> list[tuple[bytes, bytes]]:
    """The headers of the decoded body: no Content-Encoding, its own Content-Length."""
    kept = [(n, v) for n, v in headers if n not in (b"content-length", b"content-encoding")]
    return [*kept, (b"content-length", str(length).encode())]
