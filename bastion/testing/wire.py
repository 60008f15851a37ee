"""The seam between the fault engine and a provider's wire format.

A `Wire` reads a request body into an `Incoming` and renders replies; an `Encoder`
renders one streamed answer, event by event. The server drives them the same way for
every API, so each fault behaves identically on the OpenAI and Anthropic routes.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Protocol

import orjson

from bastion.testing.plan import Answer, ErrorName, Incoming


class BadRequest(Exception):
    """The request itself is invalid (the real API would answer 400)."""

    def __init__(self, message: str, param: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.param = param


class Encoder(Protocol):
    """Renders one streamed answer; each method returns bytes ready for the socket."""

    def start(self) -> bytes: ...
    def text(self, piece: str) -> bytes: ...
    def tool_start(self, index: int, name: str) -> bytes: ...
    def tool_args(self, index: int, piece: str) -> bytes: ...
    def finish(self, answer: Answer) -> bytes: ...
    def done(self) -> bytes: ...
    def error(self, message: str) -> bytes: ...
    def malformed(self) -> bytes: ...


class Wire(Protocol):
    """One provider API: request reading and reply rendering."""

    api: str

    def read(self, body: Any) -> Incoming: ...
    def error_body(self, status: int, error: ErrorName, message: str = "") -> bytes: ...
    def inband_error_body(self, message: str) -> bytes: ...
    def completion(self, request: Incoming, answer: Answer, seq: int, finished: bool) -> bytes: ...
    def encoder(self, request: Incoming, seq: int) -> Encoder: ...


def sse(data: Mapping[str, Any], event: str | None = None) -> bytes:
    head = f"event: {event}\n".encode() if event else b""
    return head + b"data: " + orjson.dumps(data) + b"\n\n"


def content_text(content: Any) -> str:
    """The text of a message's content: a string, or the text parts of a list of blocks."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(
            part["text"]
            for part in content
            if isinstance(part, Mapping)
            and part.get("type") == "text"
            and isinstance(part.get("text"), str)
        )
    return ""


def require(body: Mapping[str, Any], key: str, kind: type, what: str) -> Any:
    """`body[key]`, or a BadRequest naming the field. Booleans never pass for numbers."""
    value = body.get(key)
    if not isinstance(value, kind) or (isinstance(value, bool) and kind is not bool):
        raise BadRequest(f"'{key}' is required and must be {what}", key)
    return value
