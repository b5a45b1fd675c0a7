"""Credentials out of text that can reach an answer or a log line.

Error messages of HTTP clients name the URL they called, and a URL may carry a password
(`http://serving:<password>@mlflow:5000`, which settings accept) or a token in its query string
(presigned object-store URLs, `?token=`). `redact` replaces those values with `***`; serving
applies it where an error becomes `/ready`, `/model` or a 503 answer, and `RedactingFilter`
applies it to every log record of the server (serving/serve.py installs it on each handler).
"""

from __future__ import annotations

import logging
import re
from typing import Any

MASK = "***"
# scheme://user:password@ -- the password is everything up to the last @ of the authority (an
# unencoded @ in it must not leave its tail behind).
_USERINFO = re.compile(r"(?P<head>\b[a-zA-Z][a-zA-Z0-9+.-]*://[^/\s:@]*):(?P<secret>[^/\s]*)@")
# ?name=value / &name=value where the name says it holds a credential (token, password,
# signature: X-Amz-Signature, sig, access_token, api_key, ...).
_QUERY = re.compile(
    r"(?P<head>[?&;](?:[\w.-]*?)(?:token|passw(?:or)?d|pwd|secret|signature|sig|credential|"
    r"api[_-]?key|apikey|auth)[\w.-]*=)(?P<secret>[^&#\s'\"]+)",
    re.IGNORECASE,
)
# Authorization: Bearer <token> / Basic <credentials>, as headers or in a repr.
_AUTHORIZATION = re.compile(
    r"(?P<head>authorization['\"]?\s*[:=,]\s*['\"]?(?:bearer|basic|token)\s+)"
    r"(?P<secret>[\w.~+/=-]+)",
    re.IGNORECASE,
)


def redact(text: str) -> str:
    """`text` with every credential it shows replaced by ***."""
    text = _USERINFO.sub(rf"\g<head>:{MASK}@", text)
    text = _QUERY.sub(rf"\g<head>{MASK}", text)
    return _AUTHORIZATION.sub(rf"\g<head>{MASK}", text)


def describe(exc: BaseException | None) -> str:
    """`Type: message` of an exception, redacted: what serving shows of an error."""
    return redact(f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__)


def _redacted(value: Any) -> Any:
    """Strings and exceptions (formatted with %s, they show their message) redacted."""
    if isinstance(value, str | BaseException):
        text = str(value)
        cleaned = redact(text)
        return value if cleaned == text else cleaned
    return value


class RedactingFilter(logging.Filter):
    """Redacts the message, its arguments and the traceback of every record it sees. Arguments
    are redacted one by one (uvicorn's access formatter reads them as a tuple)."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.msg = _redacted(record.msg)
        if isinstance(record.args, tuple):
            record.args = tuple(_redacted(arg) for arg in record.args)
        elif isinstance(record.args, dict):
            record.args = {key: _redacted(arg) for key, arg in record.args.items()}
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = redact(record.exc_text)
        if record.stack_info:
            record.stack_info = redact(record.stack_info)
        return True
