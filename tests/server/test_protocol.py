"""The pieces of `server.protocol` that take what a client sent: the access log's
request target and the answer to a refused head never carry a value the client sent."""

from __future__ import annotations

import pytest
from aiohttp.http_exceptions import (
    BadHttpMessage,
    BadHttpMethod,
    BadStatusLine,
    HttpProcessingError,
    InvalidHeader,
    InvalidURLError,
    LineTooLong,
)
from hypothesis import given
from hypothesis import strategies as st

from bastion.server.protocol import REDACTED, head_error, redacted_target

NAME = st.text("abcdefghijklmnopqrstuvwxyz_", min_size=1, max_size=8)
VALUE = st.text("ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789%+-", min_size=1, max_size=16)


@given(st.lists(st.tuples(st.none() | NAME, VALUE), min_size=1, max_size=6))
def test_a_query_keeps_its_names_in_order_and_no_value(items: list[tuple[str | None, str]]) -> None:
    query = "&".join(value if name is None else f"{name}={value}" for name, value in items)
    path, _, redacted = redacted_target("/v1/models", query).partition("?")
    assert path == "/v1/models"
    expected = [REDACTED if name is None else f"{name}={REDACTED}" for name, _ in items]
    assert redacted.split("&") == expected


def test_a_target_without_a_query_is_kept() -> None:
    assert redacted_target("/api/v1/health", "") == "/api/v1/health"


SECRET = st.text("abcdefghijklmnopqrstuvwxyz0123456789", min_size=12, max_size=40)


def refusals(secret: str) -> list[HttpProcessingError]:
    """What aiohttp raises for a bad head, each quoting `secret` as it would the bytes."""
    raw = secret.encode()
    return [
        LineTooLong(raw[:100] + b"...", 8190),
        BadHttpMethod(f"{secret} / HTTP/1.1"),
        BadStatusLine(f"GET /{secret} HTTP/9.9"),
        InvalidURLError(f"Invalid char in url path:\n\n  b'GET /{secret}'\n     ^"),
        InvalidHeader(raw),
        BadHttpMessage(f"Invalid header value char:\n\n  b'X-Key: {secret}'\n         ^"),
        BadHttpMessage(f"something new, quoting {secret}"),
    ]


@given(SECRET)
def test_no_refusal_quotes_what_the_client_sent(secret: str) -> None:
    for exc in refusals(secret):
        error = head_error(exc)
        assert secret not in error.message
        assert error.status in (400, 431)
        assert error.code


@pytest.mark.parametrize(
    ("exc", "code"),
    [
        (LineTooLong(b"x...", 8190), "header_too_large"),
        (BadHttpMessage("Too many headers received"), "too_many_headers"),
        (BadHttpMethod("G@T / HTTP/1.1"), "invalid_method"),
        (BadHttpMessage("Invalid header value char:\n\n  b'...'"), "invalid_request"),
    ],
)
def test_each_refusal_has_its_code(exc: HttpProcessingError, code: str) -> None:
    assert head_error(exc).code == code
