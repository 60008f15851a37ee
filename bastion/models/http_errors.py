"""What upstream failures mean: the table from foreign exceptions to our error kinds, and
the message inside a provider's error body.

Kept apart from `http.py` because both transports (aiohttp's client for an injected
session, `h1` for the pool Bastion owns) raise their own exception classes, and one
ordered table speaks for both.
"""

from __future__ import annotations

import re
from typing import NamedTuple

import aiohttp
import orjson

from bastion.models.h1 import (
    H1ConnectError,
    H1ConnectTimeout,
    H1Disconnected,
    H1InvalidURL,
    H1ProtocolError,
    H1TLSError,
)
from bastion.models.sse import SseError
from bastion.resilience.errors import ErrorKind


class Translation(NamedTuple):
    exc_type: type[BaseException]
    kind: ErrorKind
    what: str
    phase: str | None = None  # a timeout phase: the error becomes UpstreamTimeout


# Foreign exceptions → our error tree. Most specific first: the first row the exception
# is an instance of wins (aiohttp's classes inherit from one another and from OSError,
# TimeoutError and ConnectionError, so the order is the meaning).
TRANSLATIONS: tuple[Translation, ...] = (
    # The pool Bastion owns (`h1`): its errors say what happened in their own text.
    Translation(H1ConnectTimeout, ErrorKind.TIMEOUT, "connect", "connect"),
    Translation(H1TLSError, ErrorKind.CONNECTION, "TLS handshake failed"),
    Translation(H1ConnectError, ErrorKind.CONNECTION, "cannot connect"),
    Translation(H1Disconnected, ErrorKind.CONNECTION, "connection lost"),
    Translation(H1ProtocolError, ErrorKind.PROTOCOL, "malformed HTTP response"),
    # A base_url the pool cannot use is the endpoint's fault: fail over, like a refusal.
    Translation(H1InvalidURL, ErrorKind.CONNECTION, "invalid URL"),
    # An injected aiohttp session.
    Translation(SseError, ErrorKind.PROTOCOL, "malformed event stream"),
    Translation(aiohttp.ConnectionTimeoutError, ErrorKind.TIMEOUT, "connect", "connect"),
    Translation(aiohttp.ClientConnectorDNSError, ErrorKind.CONNECTION, "DNS lookup failed"),
    Translation(
        aiohttp.ClientConnectorCertificateError, ErrorKind.CONNECTION, "TLS certificate rejected"
    ),
    Translation(aiohttp.ClientSSLError, ErrorKind.CONNECTION, "TLS handshake failed"),
    Translation(aiohttp.ClientConnectorError, ErrorKind.CONNECTION, "cannot connect"),
    Translation(aiohttp.ServerDisconnectedError, ErrorKind.CONNECTION, "server disconnected"),
    Translation(aiohttp.ClientPayloadError, ErrorKind.CONNECTION, "response body cut short"),
    Translation(aiohttp.ServerTimeoutError, ErrorKind.TIMEOUT, "socket timed out"),
    Translation(aiohttp.ClientConnectionResetError, ErrorKind.CONNECTION, "connection reset"),
    Translation(aiohttp.ClientConnectionError, ErrorKind.CONNECTION, "connection failed"),
    # A base_url aiohttp cannot use is the endpoint's fault: fail over, like a refusal.
    Translation(aiohttp.InvalidURL, ErrorKind.CONNECTION, "invalid URL"),
    Translation(aiohttp.ClientResponseError, ErrorKind.PROTOCOL, "malformed HTTP response"),
    Translation(ConnectionError, ErrorKind.CONNECTION, "connection failed"),
    Translation(TimeoutError, ErrorKind.TIMEOUT, "timed out"),
    Translation(OSError, ErrorKind.CONNECTION, "network error"),
    Translation(aiohttp.ClientError, ErrorKind.UNKNOWN, "HTTP client error"),
)


def error_message(data: object) -> str | None:
    """The human message of a provider's parsed error JSON, if it is one.

    Understands `{"error": {"message": ...}}` (OpenAI, Anthropic), `{"error": "..."}`
    and the flat `{"message": ...}` / `{"detail": ...}` of some compatible servers.
    """
    if not isinstance(data, dict):
        return None
    error = data.get("error")
    if isinstance(error, dict):
        error = error.get("message")
    if isinstance(error, str) and error:
        return error
    for key in ("message", "detail"):
        value = data.get(key)
        if isinstance(value, str) and value:
            return value
    return None


def body_message(body: bytes) -> str | None:
    try:
        return error_message(orjson.loads(body))
    except orjson.JSONDecodeError:
        return None


def error_fields(body: str) -> tuple[str | None, str | None]:
    """`param` and `code` of a provider's error JSON (OpenAI's shape), where given."""
    try:
        data = orjson.loads(body)
    except orjson.JSONDecodeError:
        return None, None
    error = data.get("error") if isinstance(data, dict) else None
    if not isinstance(error, dict):
        return None, None
    param, code = error.get("param"), error.get("code")
    return (
        param if isinstance(param, str) and param else None,
        code if isinstance(code, str) and code else None,
    )


# What a secret looks like in an upstream's words: OpenAI/Anthropic-style keys (`sk-…`,
# `sk-ant-…`, `sk-proj-…`), a bearer token, and `api_key=…` / `"x-api-key": "…"` pairs.
_SECRETS = re.compile(
    r"\bsk-[A-Za-z0-9_\-*]{6,}"
    r"|(?<=bearer )[A-Za-z0-9._~+/=\-]{6,}"
    r"|(?P<name>key|token|secret|password)(?P<sep>[\"']?\s*[:=]\s*[\"']?)[^\s\"',;&]{6,}",
    re.IGNORECASE,
)


def _masked(match: re.Match[str]) -> str:
    return (match.group("name") or "") + (match.group("sep") or "") + "***"


def scrub_secrets(text: str, *known: str | None) -> str:
    """`text` with secrets replaced by `***`: the `known` values (an endpoint's own key)
    and anything shaped like an API key, a bearer token or a `key=value` credential."""
    for secret in known:
        if secret and secret in text:
            text = text.replace(secret, "***")
    return _SECRETS.sub(_masked, text)
