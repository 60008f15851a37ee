"""The OpenAI chat-completions body, read and written at the gateway's edge.

The read side parses what routing needs (model, messages, stream, the typed options)
and validates it, naming the field on any error; every other field is passed through
to the upstream untouched (`ChatRequest.extra`). It is hand-written rather than a
pydantic model because it is the hot path: a pydantic model of the full request would
validate (and copy) every field twice for nothing.

The write side builds answers and stream chunks with orjson; chunk bytes are built
from a per-stream prefix so each token costs one small dumps.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, cast

import orjson

from bastion.models.openai_stream import usage_json as usage_json  # re-exported
from bastion.routing.streaming import UsageReport
from bastion.server.errors import ApiError, invalid
from bastion.server.openai.content import read_content
from bastion.types import (
    ChatRequest,
    ChatResponse,
    Message,
    Role,
    StreamFinish,
    TextDelta,
    ToolCall,
    ToolCallDelta,
    ToolSpec,
    UpstreamInfo,
    Usage,
)

ROLES = frozenset({"system", "developer", "user", "assistant", "tool"})
# Fields read here; everything else in the body goes upstream as it came.
_TYPED = frozenset(
    {"model", "messages", "stream", "tools", "tool_choice", "temperature", "max_tokens"}
)


@dataclass(frozen=True, slots=True)
class ParsedChat:
    model: str
    stream: bool
    include_usage: bool
    request: ChatRequest


def _tool_calls(value: Any, field: str) -> tuple[ToolCall, ...]:
    if value is None:
        return ()
    if not isinstance(value, list):
        raise invalid(field, "must be an array")
    calls = []
    for index, call in enumerate(value):
        where = f"{field}[{index}]"
        if not isinstance(call, dict):
            raise invalid(where, "must be an object")
        function = call.get("function")
        if not isinstance(function, dict):
            raise invalid(f"{where}.function", "must be an object")
        name, arguments, call_id = (
            function.get("name"),
            function.get("arguments", ""),
            call.get("id"),
        )
        if not isinstance(call_id, str):
            raise invalid(f"{where}.id", "must be a string")
        if not isinstance(name, str) or not name:
            raise invalid(f"{where}.function.name", "must be a non-empty string")
        if not isinstance(arguments, str):
            raise invalid(f"{where}.function.arguments", "must be a JSON string")
        calls.append(ToolCall(call_id, name, arguments))
    return tuple(calls)


def _positive_int(body: Mapping[str, Any], key: str) -> int | None:
    value = body.get(key)
    if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 1):
        raise invalid(key, "must be a positive integer")
    return value


def read_message(value: Any, index: int) -> Message:
    """`messages[index]` of a chat body (or an agent's run body); ApiError(400)
    naming the field at fault."""
    field = f"messages[{index}]"
    if not isinstance(value, dict):
        raise invalid(field, "must be an object")
    role = value.get("role")
    if not isinstance(role, str) or role not in ROLES:
        raise invalid(f"{field}.role", f"must be one of {', '.join(sorted(ROLES))}")
    content, parts = read_content(value.get("content"), f"{field}.content")
    name = value.get("name")
    if name is not None and not isinstance(name, str):
        raise invalid(f"{field}.name", "must be a string")
    if role == "assistant":
        calls = _tool_calls(value.get("tool_calls"), f"{field}.tool_calls")
        return Message("assistant", content, calls, name=name, parts=parts)
    if content is None:
        raise invalid(f"{field}.content", f"is required for role {role!r}")
    if role == "tool":
        call_id = value.get("tool_call_id")
        if not isinstance(call_id, str):
            raise invalid(f"{field}.tool_call_id", "is required for role 'tool'")
        return Message("tool", content, tool_call_id=call_id, parts=parts)
    kind = "system" if role == "developer" else cast(Role, role)
    return Message(kind, content, name=name, parts=parts)


def _tools(value: Any) -> tuple[ToolSpec, ...]:
    if value is None:
        return ()
    if not isinstance(value, list):
        raise invalid("tools", "must be an array")
    tools = []
    for index, tool in enumerate(value):
        where = f"tools[{index}]"
        if not isinstance(tool, dict) or tool.get("type", "function") != "function":
            raise invalid(where, "must be an object of type 'function'")
        function = tool.get("function")
        if not isinstance(function, dict):
            raise invalid(f"{where}.function", "must be an object")
        name = function.get("name")
        if not isinstance(name, str) or not name:
            raise invalid(f"{where}.function.name", "must be a non-empty string")
        description = function.get("description", "")
        if not isinstance(description, str):
            raise invalid(f"{where}.function.description", "must be a string")
        parameters = function.get("parameters", {"type": "object"})
        if not isinstance(parameters, dict):
            raise invalid(f"{where}.function.parameters", "must be a JSON schema object")
        tools.append(ToolSpec(name, description, parameters))
    return tuple(tools)


def _number(body: Mapping[str, Any], field: str, low: float, high: float) -> float | None:
    value = body.get(field)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or not low <= value <= high:
        raise invalid(field, f"must be a number between {low:g} and {high:g}")
    return float(value)


def parse_chat(raw: bytes) -> ParsedChat:
    """Validate a /v1/chat/completions body; ApiError(400) names the first bad field."""
    try:
        body = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise ApiError(400, f"the body is not valid JSON: {exc}", code="invalid_json") from None
    if not isinstance(body, dict):
        raise ApiError(400, "the body must be a JSON object", code="invalid_json")
    model = body.get("model")
    if not isinstance(model, str) or not model:
        raise invalid("model", "is required and must be a non-empty string")
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        raise invalid("messages", "is required and must be a non-empty array")
    stream = body.get("stream", False)
    if not isinstance(stream, bool):
        raise invalid("stream", "must be true or false")
    options = body.get("stream_options")
    if options is not None and not isinstance(options, dict):
        raise invalid("stream_options", "must be an object")
    include_usage = bool(options and options.get("include_usage"))
    tool_choice = body.get("tool_choice")
    if tool_choice is not None and not isinstance(tool_choice, str | dict):
        raise invalid("tool_choice", "must be a string or an object")
    max_tokens = _positive_int(body, "max_tokens")
    # OpenAI's newer name; it stays in `extra` under its own name (OpenAI's reasoning
    # models refuse `max_tokens`) and providers that know only one limit read it there.
    _positive_int(body, "max_completion_tokens")
    request = ChatRequest(
        messages=tuple(read_message(m, i) for i, m in enumerate(messages)),
        tools=_tools(body.get("tools")),
        tool_choice=tool_choice,
        temperature=_number(body, "temperature", 0.0, 2.0),
        max_tokens=max_tokens,
        extra={k: v for k, v in body.items() if k not in _TYPED and k != "stream_options"},
    )
    return ParsedChat(model, stream, include_usage, request)


# --- answers -----------------------------------------------------------------------


def usage_report_json(report: UsageReport) -> dict[str, Any]:
    """The `bastion` extension of a usage chunk (see `UsageReport`)."""
    return {
        "attempts": report.attempts,
        "seams": report.seams,
        "usage_total": usage_json(report.usage_total),
        "estimated_unreported_completion_tokens": report.estimated_unreported_completion_tokens,
    }


def tool_call_json(call: ToolCall) -> dict[str, Any]:
    return {
        "id": call.id,
        "type": "function",
        "function": {"name": call.name, "arguments": call.arguments},
    }


def completion_body(response: ChatResponse, request_id: str) -> bytes:
    """The answer in OpenAI's shape. When an OpenAI-compatible endpoint gave it, the
    upstream's own body goes back — its id, `system_fingerprint`, `logprobs`, usage
    details such as cached tokens, further choices (`n`) — with only choice 0's finish
    reason put in Bastion's reading of it. Otherwise (Anthropic, a degraded answer, a
    scripted model) it is built from the answer."""
    raw = response.raw
    if raw is not None and not response.degraded and _openai_answer(raw):
        choices = list(raw["choices"])
        choices[0] = {**choices[0], "finish_reason": response.finish_reason}
        return orjson.dumps({**raw, "choices": choices})
    message: dict[str, Any] = {"role": "assistant", "content": response.message.content}
    if response.message.tool_calls:
        message["tool_calls"] = [tool_call_json(c) for c in response.message.tool_calls]
    return orjson.dumps(
        {
            "id": f"chatcmpl-{request_id}",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": response.model,
            "choices": [{"index": 0, "message": message, "finish_reason": response.finish_reason}],
            "usage": usage_json(response.usage),
        }
    )


def _openai_answer(raw: Mapping[str, Any]) -> bool:
    """Whether `raw` is a chat completion a client can take as it is: choice 0 holds
    a message whose content is text (some servers answer content parts instead)."""
    choices = raw.get("choices")
    if not isinstance(choices, list) or not choices or not isinstance(choices[0], dict):
        return False
    message = choices[0].get("message")
    return isinstance(message, dict) and isinstance(message.get("content"), str | None)


class ChunkWriter:
    """Server-sent `chat.completion.chunk` events for one stream. What the upstream said
    besides the text passes on: its `system_fingerprint` on every chunk, and per choice
    the `logprobs` of each piece of text."""

    __slots__ = ("_created", "_fingerprint", "_head", "_id", "_info", "_model", "_started")

    def __init__(self, request_id: str, model: str) -> None:
        self._id = f"chatcmpl-{request_id}"
        self._created = int(time.time())
        self._head = b""
        self._model = model
        self._fingerprint: str | None = None
        self._info: UpstreamInfo | None = None
        self._build_head()
        self._started = False

    def rename(self, model: str) -> None:
        """Name `model` in the chunks from now on: after a mid-stream switch, each
        chunk names the model that produced it."""
        self._model = model
        self._build_head()

    def _follow(self, info: UpstreamInfo | None) -> None:
        # A new upstream answer (the first, or another after a seam): its fingerprint.
        self._info = info
        fingerprint = info.system_fingerprint if info is not None else None
        if fingerprint != self._fingerprint:
            self._fingerprint = fingerprint
            self._build_head()

    def _build_head(self) -> None:
        prefix: dict[str, Any] = {
            "id": self._id,
            "object": "chat.completion.chunk",
            "created": self._created,
            "model": self._model,
        }
        if self._fingerprint is not None:
            prefix["system_fingerprint"] = self._fingerprint
        # '{"id":...,"model":"m"' — completed per chunk with ',"choices":[...]}'.
        self._head = b"data: " + orjson.dumps(prefix)[:-1]

    def _chunk(
        self,
        delta: dict[str, Any],
        finish: str | None = None,
        logprobs: Mapping[str, Any] | None = None,
    ) -> bytes:
        choice: dict[str, Any] = {"index": 0, "delta": delta, "finish_reason": finish}
        if logprobs is not None:
            choice["logprobs"] = logprobs
        return self._head + b',"choices":[' + orjson.dumps(choice) + b"]}\n\n"

    def text(self, event: TextDelta) -> bytes:
        if event.info is not self._info:
            self._follow(event.info)
        if self._started:
            return self._chunk({"content": event.text}, None, event.logprobs)
        self._started = True
        return self._chunk({"role": "assistant", "content": event.text}, None, event.logprobs)

    def tool_call(self, delta: ToolCallDelta) -> bytes:
        if delta.info is not self._info:
            self._follow(delta.info)
        call: dict[str, Any] = {"index": delta.index, "function": {"arguments": delta.arguments}}
        if delta.id is not None:
            call["id"] = delta.id
            call["type"] = "function"
        if delta.name is not None:
            call["function"]["name"] = delta.name
        role = {} if self._started else {"role": "assistant"}
        self._started = True
        return self._chunk({**role, "tool_calls": [call]})

    def finish(
        self, finish: StreamFinish, include_usage: bool, report: UsageReport | None = None
    ) -> bytes:
        """The finish chunk, and with `include_usage` the usage chunk. With a `report`
        (a request that took more than one attempt) the usage chunk also carries
        `bastion`: the attempts, the seams and what every attempt consumed."""
        out = self._chunk({}, finish.finish_reason)
        if include_usage:
            usage = usage_json(finish.usage or Usage())
            out += self._head + b',"choices":[],"usage":' + orjson.dumps(usage)
            if report is not None:
                out += b',"bastion":' + orjson.dumps(usage_report_json(report))
            out += b"}\n\n"
        return out + b"data: [DONE]\n\n"

    @staticmethod
    def error(kind: str, message: str, attempts: list[dict[str, Any]]) -> bytes:
        """An in-band error: the OpenAI SDKs raise on it instead of ending cleanly."""
        body = {
            "error": {
                "message": message,
                "type": "upstream_error",
                "code": kind,
                "param": None,
                "attempts": attempts,
            }
        }
        return b"data: " + orjson.dumps(body) + b"\n\n"
