"""Anthropic's Messages API wire format: request reading, JSON answers, SSE events."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

import orjson

from bastion.testing.openai_wire import PREFILL_MESSAGE
from bastion.testing.plan import Answer, ErrorName, Incoming, Turn
from bastion.testing.wire import BadRequest, content_text, require, sse

# (error type, message) per status, worded as Anthropic words them.
_STATUS: Mapping[int, tuple[str, str]] = {
    400: ("invalid_request_error", "Invalid request."),
    401: ("authentication_error", "invalid x-api-key"),
    403: (
        "permission_error",
        "Your API key does not have permission to use the specified resource.",
    ),
    404: ("not_found_error", "The requested resource could not be found."),
    413: ("request_too_large", "Request exceeds the maximum allowed number of bytes."),
    429: ("rate_limit_error", "Number of requests has exceeded your per-minute rate limit."),
    500: ("api_error", "Internal server error"),
    529: ("overloaded_error", "Overloaded"),
}

CONTEXT_LENGTH_MESSAGE = "prompt is too long: 9000 tokens > 8192 maximum"
CONTENT_FILTER_MESSAGE = "Output blocked by content filtering policy"


def _error(type_: str, message: str) -> bytes:
    return orjson.dumps({"type": "error", "error": {"type": type_, "message": message}})


class AnthropicWire:
    """`POST /v1/messages`. The system prompt becomes the first turn."""

    api = "anthropic"

    def read(self, body: Any) -> Incoming:
        if not isinstance(body, Mapping):
            raise BadRequest("the request body must be a JSON object")
        model = require(body, "model", str, "a string")
        require(body, "max_tokens", int, "an integer")
        messages = require(body, "messages", list, "a non-empty array")
        if not messages:
            raise BadRequest("messages: at least one message is required", "messages")
        turns: list[Turn] = []
        if body.get("system"):
            turns.append(Turn("system", content_text(body["system"])))
        for i, message in enumerate(messages):
            if not isinstance(message, Mapping) or message.get("role") not in ("user", "assistant"):
                raise BadRequest(f"messages.{i}.role: must be 'user' or 'assistant'", "messages")
            turns.append(Turn(message["role"], content_text(message.get("content"))))
        if turns[-1].role == "assistant" and turns[-1].text != turns[-1].text.rstrip():
            # The real API refuses this; a router that prefills must strip first.
            raise BadRequest(
                "messages: final assistant content cannot end with trailing whitespace",
                "messages",
            )
        stream = body.get("stream") is True
        return Incoming(self.api, model, stream, tuple(turns), True, body)

    def error_body(self, status: int, error: ErrorName, message: str = "") -> bytes:
        if error == "context_length":
            return _error("invalid_request_error", CONTEXT_LENGTH_MESSAGE)
        if error == "content_filter":
            return _error("invalid_request_error", CONTENT_FILTER_MESSAGE)
        if error == "prefill":
            return _error("invalid_request_error", PREFILL_MESSAGE)
        if error == "bad_request":
            return _error("invalid_request_error", message)
        type_, text = _STATUS.get(
            status, ("api_error" if status >= 500 else "invalid_request_error", f"HTTP {status}")
        )
        return _error(type_, text)

    def inband_error_body(self, message: str) -> bytes:
        return _error(_error_type(message), message)

    def completion(self, request: Incoming, answer: Answer, seq: int, finished: bool) -> bytes:
        content: list[dict[str, Any]] = []
        if answer.text:
            content.append({"type": "text", "text": answer.text})
        for i, (name, args) in enumerate(answer.tool_calls):
            content.append(
                {"type": "tool_use", "id": _tool_id(seq, i), "name": name, "input": _input(args)}
            )
        return orjson.dumps(
            {
                "id": f"msg_fake{seq}",
                "type": "message",
                "role": "assistant",
                "model": request.model,
                "content": content,
                "stop_reason": _stop_reason(answer) if finished else None,
                "stop_sequence": None,
                "usage": {
                    "input_tokens": request.prompt_tokens,
                    "output_tokens": answer.completion_tokens,
                },
            }
        )

    def encoder(self, request: Incoming, seq: int) -> AnthropicEncoder:
        return AnthropicEncoder(request, seq)


class AnthropicEncoder:
    """message_start, content blocks (text / tool_use), message_delta, message_stop."""

    def __init__(self, request: Incoming, seq: int) -> None:
        self._request = request
        self._seq = seq
        self._open: int | None = None  # index of the open content block
        self._next = 0

    def _begin(self, block: Mapping[str, Any]) -> bytes:
        out = self._close()
        self._open, self._next = self._next, self._next + 1
        return out + sse(
            {"type": "content_block_start", "index": self._open, "content_block": block},
            "content_block_start",
        )

    def _close(self) -> bytes:
        if self._open is None:
            return b""
        index, self._open = self._open, None
        return sse({"type": "content_block_stop", "index": index}, "content_block_stop")

    def start(self) -> bytes:
        message: dict[str, Any] = {
            "id": f"msg_fake{self._seq}",
            "type": "message",
            "role": "assistant",
            "model": self._request.model,
            "content": [],
            "stop_reason": None,
            "stop_sequence": None,
            "usage": {"input_tokens": self._request.prompt_tokens, "output_tokens": 1},
        }
        return sse({"type": "message_start", "message": message}, "message_start") + sse(
            {"type": "ping"}, "ping"
        )

    def text(self, piece: str) -> bytes:
        out = b"" if self._open is not None else self._begin({"type": "text", "text": ""})
        delta = {"type": "text_delta", "text": piece}
        return out + sse(
            {"type": "content_block_delta", "index": self._open, "delta": delta},
            "content_block_delta",
        )

    def tool_start(self, index: int, name: str) -> bytes:
        block = {"type": "tool_use", "id": _tool_id(self._seq, index), "name": name, "input": {}}
        return self._begin(block)

    def tool_args(self, index: int, piece: str) -> bytes:
        delta = {"type": "input_json_delta", "partial_json": piece}
        return sse(
            {"type": "content_block_delta", "index": self._open, "delta": delta},
            "content_block_delta",
        )

    def finish(self, answer: Answer) -> bytes:
        delta = {"stop_reason": _stop_reason(answer), "stop_sequence": None}
        usage = {"output_tokens": answer.completion_tokens}
        return self._close() + sse(
            {"type": "message_delta", "delta": delta, "usage": usage}, "message_delta"
        )

    def done(self) -> bytes:
        return self._close() + sse({"type": "message_stop"}, "message_stop")

    def error(self, message: str) -> bytes:
        return b"event: error\ndata: " + _error(_error_type(message), message) + b"\n\n"

    def malformed(self) -> bytes:
        return b'event: content_block_delta\ndata: {"type": "content_block_delta", "delta": {"t\n\n'


def _error_type(message: str) -> str:
    return "overloaded_error" if "overloaded" in message.lower() else "api_error"


def _tool_id(seq: int, index: int) -> str:
    return f"toolu_fake{seq}_{index}"


def _stop_reason(answer: Answer) -> str:
    return "tool_use" if answer.tool_calls else "end_turn"


def _input(args: str) -> Any:
    # A tool_use block's input is an object; arguments that are not JSON (a test may
    # script them on purpose) travel as a string under a key that says so.
    try:
        return json.loads(args or "{}")
    except ValueError:
        return {"_unparsed_arguments": args}
