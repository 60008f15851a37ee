"""The OpenAI chat-completions wire format: request bodies and answers.

Pure functions, no I/O: `openai.py` does the HTTP, `openai_stream.py` decodes streamed
answers.
Everything a server sends is untrusted input, so each access to its JSON is checked
and anything malformed becomes an `UpstreamError(PROTOCOL)` rather than a KeyError.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import orjson

from bastion.models.base import Endpoint
from bastion.models.http_errors import error_message
from bastion.resilience.errors import ErrorKind, UpstreamError, kind_of_message
from bastion.types import (
    ChatRequest,
    ChatResponse,
    FinishReason,
    Message,
    ToolCall,
    ToolSpec,
    Usage,
)

# Compatible servers use more finish reasons than OpenAI does; anything not listed
# (and None, in a complete answer) reads as "stop".
FINISH_REASONS: Mapping[str, FinishReason] = {
    "stop": "stop",
    "eos": "stop",
    "eos_token": "stop",
    "end_turn": "stop",
    "stop_sequence": "stop",
    "length": "length",
    "max_tokens": "length",
    "model_length": "length",
    "tool_calls": "tool_calls",
    "function_call": "tool_calls",
    "tool_use": "tool_calls",
    "content_filter": "content_filter",
}
# Finish reasons that mean the answer is not whole (vLLM "abort", TGI/others "error").
# Presenting such an answer as finished would hand a truncated text on as complete.
FAILED_REASONS = frozenset({"error", "abort"})


# --- requests ------------------------------------------------------------------------


def request_body(endpoint: Endpoint, request: ChatRequest, *, stream: bool) -> dict[str, Any]:
    """The JSON body for POST /chat/completions.

    `request.extra` is passed through unchanged, but the typed fields win over it and
    it cannot change the model, the messages or whether the answer streams.
    """
    body: dict[str, Any] = dict(request.extra)
    body["model"] = endpoint.model
    body["messages"] = [message_json(m) for m in request.messages]
    if request.tools:
        body["tools"] = [tool_json(t) for t in request.tools]
    if request.tool_choice is not None:
        body["tool_choice"] = request.tool_choice
    if request.temperature is not None:
        body["temperature"] = request.temperature
    if request.max_tokens is not None:
        body["max_tokens"] = request.max_tokens
    if stream:
        body["stream"] = True
        # Without it the usage of a streamed answer is never reported.
        body.setdefault("stream_options", {"include_usage": True})
    else:
        body.pop("stream", None)
        body.pop("stream_options", None)  # rejected by OpenAI unless streaming
    return body


def message_json(message: Message) -> dict[str, Any]:
    """One message in OpenAI form; a trailing assistant message goes as given (prefill)."""
    out: dict[str, Any] = {"role": message.role}
    if message.tool_calls:
        # null content next to tool calls is what OpenAI itself answers with, so every
        # compatible server accepts it back.
        out["content"] = message.content
        out["tool_calls"] = [
            {"id": c.id, "type": "function", "function": {"name": c.name, "arguments": c.arguments}}
            for c in message.tool_calls
        ]
    else:
        out["content"] = message.content if message.content is not None else ""
    if message.parts:
        out["content"] = list(message.parts)
    if message.tool_call_id is not None:
        out["tool_call_id"] = message.tool_call_id
    if message.name is not None:
        out["name"] = message.name
    return out


def tool_json(tool: ToolSpec) -> dict[str, Any]:
    """A tool in OpenAI's function format."""
    function: dict[str, Any] = {"name": tool.name, "parameters": tool.parameters}
    if tool.description:
        function["description"] = tool.description
    return {"type": "function", "function": function}


# --- answers -------------------------------------------------------------------------


def finish_reason(raw: object) -> FinishReason:
    """Our finish reason for a server's; unknown and missing ones read as "stop"."""
    return FINISH_REASONS.get(raw, "stop") if isinstance(raw, str) else "stop"


def usage_of(raw: object) -> Usage | None:
    """Token counts from a `usage` object, None when there is none."""
    if not isinstance(raw, dict):
        return None
    prompt, completion = raw.get("prompt_tokens"), raw.get("completion_tokens")
    return Usage(
        prompt_tokens=prompt if isinstance(prompt, int) else 0,
        completion_tokens=completion if isinstance(completion, int) else 0,
        cached_tokens=_detail(raw, "prompt_tokens_details", "cached_tokens"),
        reasoning_tokens=_detail(raw, "completion_tokens_details", "reasoning_tokens"),
    )


def _detail(usage: dict[str, Any], group: str, name: str) -> int | None:
    details = usage.get(group)
    value = details.get(name) if isinstance(details, dict) else None
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def parse_response(data: Any, endpoint: Endpoint) -> ChatResponse:
    """A `ChatResponse` from a parsed chat-completion answer."""
    if not isinstance(data, dict):
        raise _protocol(endpoint, "answer is not a JSON object")
    message = error_message(data) if "error" in data or data.get("object") == "error" else None
    if message is not None:  # an error answered with status 200
        raise UpstreamError(kind_of_message(message), message, endpoint=endpoint.id)
    try:
        choice = data["choices"][0]
        reply = choice.get("message") or {}
        content = _text(reply.get("content"))
        calls = tuple(_tool_call(c, i) for i, c in enumerate(reply.get("tool_calls") or ()))
        legacy = reply.get("function_call")
        if legacy:
            calls += (_tool_call({"id": "function_call", "function": legacy}, 0),)
        raw_reason = choice.get("finish_reason")
    except (KeyError, IndexError, TypeError, AttributeError) as exc:
        raise _protocol(endpoint, f"unexpected answer shape ({exc!r})") from exc
    if raw_reason in FAILED_REASONS:
        raise UpstreamError(
            ErrorKind.SERVER_ERROR, f"upstream finished with {raw_reason!r}", endpoint=endpoint.id
        )
    reason = finish_reason(raw_reason)
    if calls and reason == "stop":  # some servers say "stop" next to tool calls
        reason = "tool_calls"
    model = data.get("model")
    return ChatResponse(
        message=Message(role="assistant", content=content, tool_calls=calls),
        finish_reason=reason,
        usage=usage_of(data.get("usage")) or Usage(),
        model=model if isinstance(model, str) and model else endpoint.model,
        endpoint=endpoint.id,
        raw=data,
    )


def _text(content: object) -> str | None:
    if content is None or isinstance(content, str):
        return content
    if isinstance(content, list):  # content parts, as some servers answer
        return "".join(
            p["text"] for p in content if isinstance(p, dict) and isinstance(p.get("text"), str)
        )
    raise TypeError(f"content of type {type(content).__name__}")


def _tool_call(raw: dict[str, Any], position: int) -> ToolCall:
    function = raw["function"]
    arguments = function.get("arguments")
    if not isinstance(arguments, str):  # a few servers send the object itself
        arguments = orjson.dumps(arguments).decode() if arguments is not None else ""
    return ToolCall(
        id=raw.get("id") or f"call_{position}", name=function["name"], arguments=arguments
    )


def _protocol(endpoint: Endpoint, message: str) -> UpstreamError:
    return UpstreamError(ErrorKind.PROTOCOL, message, endpoint=endpoint.id)
