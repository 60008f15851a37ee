"""The Anthropic Messages wire format: request bodies and answers.

Pure functions, no I/O: `anthropic.py` does the HTTP, `anthropic_stream.py` decodes
streamed answers.

Our types follow the OpenAI chat shape, so this module is a translation both ways:
system messages become the top-level `system`, tool calls become `tool_use` blocks,
tool results become `tool_result` blocks in a user turn, and back.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, NamedTuple

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
    Usage,
)

API_VERSION = "2023-06-01"
# The Messages API requires max_tokens; this is the answer length when none is asked.
DEFAULT_MAX_TOKENS = 4096

STOP_REASONS: Mapping[str, FinishReason] = {
    "end_turn": "stop",
    "stop_sequence": "stop",
    "pause_turn": "stop",
    "max_tokens": "length",
    "model_context_window_exceeded": "length",
    "tool_use": "tool_calls",
    "refusal": "content_filter",
}
# Anthropic names the kind of an error in `error.type`; better than reading its wording.
ERROR_TYPES: Mapping[str, ErrorKind] = {
    "overloaded_error": ErrorKind.UNAVAILABLE,
    "rate_limit_error": ErrorKind.RATE_LIMITED,
    "api_error": ErrorKind.SERVER_ERROR,
}
# `ChatRequest.extra` is written for OpenAI-compatible APIs, and Anthropic rejects
# fields it does not know; only these pass through (and `stop` as `stop_sequences`).
PASSTHROUGH = frozenset(
    {"top_p", "top_k", "stop_sequences", "metadata", "thinking", "service_tier"}
)

_TOOL_CHOICES: Mapping[str, dict[str, str]] = {
    "auto": {"type": "auto"},
    "required": {"type": "any"},
    "any": {"type": "any"},
    "none": {"type": "none"},
}


class Prepared(NamedTuple):
    """A request body, and whether the answer's leading whitespace must be dropped
    (the prefill lost trailing whitespace that the joined text already has)."""

    body: dict[str, Any]
    strip_leading: bool


# --- requests ------------------------------------------------------------------------


def request_body(endpoint: Endpoint, request: ChatRequest, *, stream: bool) -> Prepared:
    """The JSON body for POST /v1/messages."""
    system: list[str] = []
    messages: list[dict[str, Any]] = []
    for m in request.messages:
        if m.role == "system":
            system.append(m.content or "")
        elif m.role == "tool":
            result = {
                "type": "tool_result",
                "tool_use_id": m.tool_call_id or "",
                "content": _content(m, endpoint),
            }
            last = messages[-1] if messages else None
            if last is not None and last["role"] == "user" and _all_tool_results(last):
                last["content"].append(result)  # one user turn for consecutive results
            else:
                messages.append({"role": "user", "content": [result]})
        elif m.role == "assistant":
            messages.append(_assistant(m, endpoint))
        else:
            messages.append({"role": "user", "content": _content(m, endpoint)})
    strip_leading = _trim_prefill(messages)

    body: dict[str, Any] = {k: v for k, v in request.extra.items() if k in PASSTHROUGH}
    stop = request.extra.get("stop")
    if stop and "stop_sequences" not in body:
        body["stop_sequences"] = [stop] if isinstance(stop, str) else list(stop)
    body["model"] = endpoint.model
    newer = request.extra.get("max_completion_tokens")  # OpenAI's newer name for it
    body["max_tokens"] = (
        request.max_tokens or (newer if isinstance(newer, int) else None) or DEFAULT_MAX_TOKENS
    )
    body["messages"] = messages
    if system:
        body["system"] = "\n\n".join(system)
    if request.tools:
        body["tools"] = [
            {"name": t.name, "description": t.description, "input_schema": t.parameters}
            if t.description
            else {"name": t.name, "input_schema": t.parameters}
            for t in request.tools
        ]
        choice = tool_choice(request.tool_choice)
        if choice is not None:
            body["tool_choice"] = choice
    if request.temperature is not None:
        # OpenAI's scale runs to 2, Anthropic's to 1: clamp rather than fail the failover.
        body["temperature"] = min(max(request.temperature, 0.0), 1.0)
    if stream:
        body["stream"] = True
    return Prepared(body, strip_leading)


def tool_choice(choice: str | Mapping[str, Any] | None) -> dict[str, Any] | None:
    """Anthropic's tool_choice for an OpenAI-style one; None to leave it out."""
    if choice is None:
        return None
    if isinstance(choice, str):
        return _TOOL_CHOICES.get(choice)
    kind = choice.get("type")
    if kind == "function":
        function = choice.get("function")
        name = function.get("name") if isinstance(function, Mapping) else choice.get("name")
        return {"type": "tool", "name": name}
    if kind in ("auto", "any", "none", "tool"):  # already in Anthropic's form
        return dict(choice)
    return None


def _content(m: Message, endpoint: Endpoint) -> str | list[dict[str, Any]]:
    """A user or tool message's content: its text, or Anthropic's blocks for its parts."""
    if not m.parts:
        return m.content or ""
    return [_block(part, endpoint) for part in m.parts]


def _block(part: Mapping[str, Any], endpoint: Endpoint) -> dict[str, Any]:
    kind = part.get("type")
    if kind == "text":
        return {"type": "text", "text": part.get("text", "")}
    if kind == "image_url":
        return {"type": "image", "source": _source(part["image_url"]["url"])}
    file = part.get("file") if kind == "file" else None
    data = file.get("file_data") if isinstance(file, Mapping) else None
    if isinstance(data, str) and data.startswith("data:application/pdf;base64,"):
        return {"type": "document", "source": _source(data)}
    # Audio, a file by id, or a file that is not a PDF: nothing Anthropic takes. The
    # request is the caller's to change, not a fault of this endpoint.
    raise UpstreamError(
        ErrorKind.INVALID_REQUEST,
        f"a {kind} content part cannot be sent to an Anthropic model "
        "(it takes text, images and PDF files)",
        endpoint=endpoint.id,
    )


def _source(url: str) -> dict[str, Any]:
    """An image or document source: a `data:` URL's bytes, or the URL itself."""
    if url.startswith("data:"):
        media_type, _, data = url[len("data:") :].partition(";base64,")
        return {"type": "base64", "media_type": media_type, "data": data}
    return {"type": "url", "url": url}


def _assistant(m: Message, endpoint: Endpoint) -> dict[str, Any]:
    if not m.tool_calls:
        return {"role": "assistant", "content": m.content or ""}
    blocks: list[dict[str, Any]] = []
    if m.content:
        blocks.append({"type": "text", "text": m.content})
    for call in m.tool_calls:
        try:
            arguments = orjson.loads(call.arguments) if call.arguments.strip() else {}
        except orjson.JSONDecodeError:
            arguments = None
        if not isinstance(arguments, dict):
            # Anthropic needs an object; a malformed call in the history (written by
            # another model) makes this request invalid here, not the endpoint faulty.
            raise UpstreamError(
                ErrorKind.INVALID_REQUEST,
                f"tool call {call.id!r} has arguments that are not a JSON object",
                endpoint=endpoint.id,
            )
        blocks.append({"type": "tool_use", "id": call.id, "name": call.name, "input": arguments})
    return {"role": "assistant", "content": blocks}


def _all_tool_results(message: dict[str, Any]) -> bool:
    content = message["content"]
    return isinstance(content, list) and all(b.get("type") == "tool_result" for b in content)


def _trim_prefill(messages: list[dict[str, Any]]) -> bool:
    """Anthropic rejects a final assistant content that ends with whitespace. Strip it,
    and report whether any was stripped so the continuation's leading whitespace goes
    too (prefill "Hello, " + continuation " world" must join as "Hello, world")."""
    if not messages or messages[-1]["role"] != "assistant":
        return False
    content = messages[-1]["content"]
    if not isinstance(content, str):
        return False
    trimmed = content.rstrip()
    if trimmed == content:
        return False
    if trimmed:
        messages[-1]["content"] = trimmed
    else:
        messages.pop()  # an empty assistant turn is rejected too
    return True


# --- answers -------------------------------------------------------------------------


def finish_reason(raw: object) -> FinishReason:
    """Our finish reason for a stop_reason; unknown and missing ones read as "stop"."""
    return STOP_REASONS.get(raw, "stop") if isinstance(raw, str) else "stop"


def error_kind(error: object) -> ErrorKind:
    """The kind of an Anthropic `error` object: by its type, else by its wording."""
    if isinstance(error, dict):
        kind = ERROR_TYPES.get(error.get("type", ""))
        if kind is not None:
            return kind
        message = error.get("message")
        return kind_of_message(message if isinstance(message, str) else "")
    return kind_of_message(str(error or ""))


def input_tokens(usage: Mapping[str, Any]) -> int:
    """The prompt's token count from a `usage` object."""
    # Cached prompt tokens are counted apart from input_tokens; the prompt is all three.
    return sum(
        value
        for key in ("input_tokens", "cache_creation_input_tokens", "cache_read_input_tokens")
        if isinstance(value := usage.get(key), int)
    )


def parse_response(data: Any, endpoint: Endpoint, *, strip_leading: bool = False) -> ChatResponse:
    """A `ChatResponse` from a parsed Messages answer."""
    if not isinstance(data, dict):
        raise UpstreamError(ErrorKind.PROTOCOL, "answer is not a JSON object", endpoint=endpoint.id)
    if data.get("type") == "error":  # an error answered with status 200
        message = error_message(data) or "error"
        raise UpstreamError(error_kind(data.get("error")), message, endpoint=endpoint.id)
    texts: list[str] = []
    calls: list[ToolCall] = []
    try:
        for block in data["content"]:
            kind = block.get("type")
            if kind == "text":
                texts.append(block["text"])
            elif kind == "tool_use":
                arguments = orjson.dumps(block.get("input") or {}).decode()
                calls.append(ToolCall(id=block["id"], name=block["name"], arguments=arguments))
        usage = data.get("usage") or {}
        prompt, completion = input_tokens(usage), usage.get("output_tokens")
    except (KeyError, TypeError, AttributeError) as exc:
        message = f"unexpected answer shape ({exc!r})"
        raise UpstreamError(ErrorKind.PROTOCOL, message, endpoint=endpoint.id) from exc
    text = "".join(texts) if texts else None
    if text and strip_leading:
        text = text.lstrip()
    model = data.get("model")
    return ChatResponse(
        message=Message(role="assistant", content=text, tool_calls=tuple(calls)),
        finish_reason=finish_reason(data.get("stop_reason")),
        usage=Usage(prompt, completion if isinstance(completion, int) else 0),
        model=model if isinstance(model, str) and model else endpoint.model,
        endpoint=endpoint.id,
        raw=data,
    )
