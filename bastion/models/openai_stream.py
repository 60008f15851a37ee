"""The OpenAI chat-completions stream: chunks into `StreamEvent`s, and a streamed answer
back into the chat completion the upstream would have answered without streaming.

Pure functions and one small decoder object, no I/O: `openai.py` does the HTTP.
Everything a server sends is untrusted input; anything malformed becomes a
`StreamBroken(PROTOCOL)` rather than a KeyError.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from typing import Any

import orjson

from bastion.models.http_errors import error_message
from bastion.models.openai_wire import FAILED_REASONS, finish_reason, message_json, usage_of
from bastion.models.sse import SseEvent
from bastion.resilience.errors import ErrorKind, StreamBroken, kind_of_message
from bastion.types import (
    FinishReason,
    Message,
    StreamEvent,
    StreamFinish,
    TextDelta,
    ToolCallDelta,
    UpstreamInfo,
    Usage,
)

_DONE = b"[DONE]"


def upstream_info(chunk: Mapping[str, Any]) -> UpstreamInfo | None:
    """What a chunk (or an answer) says about the answer besides its content; None
    when it says nothing (a keep-alive)."""
    answer_id = chunk.get("id")
    if not isinstance(answer_id, str):
        return None
    created, model = chunk.get("created"), chunk.get("model")
    fingerprint, tier = chunk.get("system_fingerprint"), chunk.get("service_tier")
    return UpstreamInfo(
        answer_id,
        created if isinstance(created, int) and not isinstance(created, bool) else None,
        model if isinstance(model, str) and model else None,
        fingerprint if isinstance(fingerprint, str) else None,
        tier if isinstance(tier, str) else None,
    )


def assembled_answer(
    info: UpstreamInfo,
    message: Message,
    finish: FinishReason,
    logprobs: Mapping[str, Any] | None,
    usage: Usage,
) -> dict[str, Any]:
    """A streamed answer as the chat completion the upstream would have answered
    without streaming: its id, model, `system_fingerprint`, `logprobs`, `refusal` and
    usage object as it sent them, around the text and tool calls put back together."""
    reply = message_json(message)
    reply["content"] = message.content  # null when there is none, as OpenAI answers it
    if info.refusal is not None:
        reply["refusal"] = info.refusal
    body: dict[str, Any] = {"id": info.id, "object": "chat.completion"}
    if info.created is not None:
        body["created"] = info.created
    if info.model is not None:
        body["model"] = info.model
    if info.system_fingerprint is not None:
        body["system_fingerprint"] = info.system_fingerprint
    if info.service_tier is not None:
        body["service_tier"] = info.service_tier
    body["choices"] = [
        {"index": 0, "message": reply, "logprobs": logprobs, "finish_reason": finish}
    ]
    body["usage"] = dict(info.usage) if info.usage is not None else usage_json(usage)
    return body


def usage_json(usage: Usage) -> dict[str, Any]:
    """OpenAI's usage object; the token details only when they are known."""
    out: dict[str, Any] = {
        "prompt_tokens": usage.prompt_tokens,
        "completion_tokens": usage.completion_tokens,
        "total_tokens": usage.total_tokens,
    }
    if usage.cached_tokens is not None:
        out["prompt_tokens_details"] = {"cached_tokens": usage.cached_tokens}
    if usage.reasoning_tokens is not None:
        out["completion_tokens_details"] = {"reasoning_tokens": usage.reasoning_tokens}
    return out


class ChunkDecoder:
    """Turns the SSE events of one streamed answer into `StreamEvent`s.

    Feed events in order until `done` (the `[DONE]` sentinel), then call `finish()`
    once — also when the body ended without `[DONE]`. Only choice 0 is followed.
    """

    __slots__ = (
        "_endpoint",
        "_info",
        "_raw_usage",
        "_reason",
        "_refusal",
        "_tool_calls",
        "_usage",
        "done",
    )

    def __init__(self, endpoint: str) -> None:
        self._endpoint = endpoint
        self._reason: FinishReason | None = None
        self._usage: Usage | None = None
        self._raw_usage: dict[str, Any] | None = None
        self._tool_calls = False
        self._info: UpstreamInfo | None = None
        self._refusal: list[str] | None = None
        self.done = False

    def feed(self, event: SseEvent) -> list[StreamEvent]:
        """The content events in one SSE event; empty for role-only and usage chunks."""
        data = event.data
        if data == _DONE:
            self.done = True
            return []
        try:
            chunk = orjson.loads(data)
        except orjson.JSONDecodeError:
            if event.event == "error":
                raise self._in_band(data.decode("utf-8", "replace")) from None
            raise self._broken(ErrorKind.PROTOCOL, f"malformed chunk: {data[:200]!r}") from None
        if not isinstance(chunk, dict):
            raise self._broken(ErrorKind.PROTOCOL, f"chunk is not an object: {data[:200]!r}")
        if event.event == "error" or chunk.get("error") or chunk.get("object") == "error":
            raise self._in_band(error_message(chunk) or data.decode("utf-8", "replace"))
        if self._info is None:
            self._info = upstream_info(chunk)
        usage = chunk.get("usage")
        if usage:
            self._usage = usage_of(usage)
            self._raw_usage = usage if isinstance(usage, dict) else None
        choices = chunk.get("choices")
        if not choices:  # the usage chunk after the finish, or a keep-alive
            return []
        try:
            return self._choice(choices)
        except (KeyError, IndexError, TypeError, AttributeError) as exc:
            raise self._broken(ErrorKind.PROTOCOL, f"unexpected chunk shape ({exc!r})") from exc

    def _choice(self, choices: list[Any]) -> list[StreamEvent]:
        out: list[StreamEvent] = []
        for choice in choices:
            if choice.get("index", 0) != 0:
                continue
            delta = choice.get("delta") or {}
            text = delta.get("content")
            if text:
                logprobs = choice.get("logprobs")
                out.append(
                    TextDelta(text, logprobs if isinstance(logprobs, dict) else None, self._info)
                )
            refusal = delta.get("refusal")
            if refusal and isinstance(refusal, str):
                if self._refusal is None:
                    self._refusal = []
                self._refusal.append(refusal)
            calls = delta.get("tool_calls")
            if calls:
                for position, call in enumerate(calls):
                    self._tool_piece(
                        out, call.get("index", position), call.get("id"), call.get("function")
                    )
            legacy = delta.get("function_call")
            if legacy:
                self._tool_piece(out, 0, None, legacy)
            raw_reason = choice.get("finish_reason")
            if raw_reason is not None:
                if raw_reason in FAILED_REASONS:
                    message = f"upstream finished with {raw_reason!r}"
                    raise self._broken(ErrorKind.SERVER_ERROR, message)
                self._reason = finish_reason(raw_reason)
        return out

    def _tool_piece(
        self, out: list[StreamEvent], index: int, call_id: object, function: object
    ) -> None:
        fn = function if isinstance(function, dict) else {}
        name, arguments = fn.get("name"), fn.get("arguments")
        if call_id or name or arguments:  # servers send empty pieces; they carry nothing
            self._tool_calls = True
            out.append(
                ToolCallDelta(
                    index=index,
                    id=call_id if isinstance(call_id, str) and call_id else None,
                    name=name if isinstance(name, str) and name else None,
                    arguments=arguments if isinstance(arguments, str) else "",
                    info=self._info,
                )
            )

    def finish(self) -> StreamFinish:
        """The one closing event, or StreamBroken if the stream did not really finish."""
        if self._reason is None:
            if self.done:
                message = "stream ended without a finish reason"
                raise self._broken(ErrorKind.PROTOCOL, message)
            raise self._broken(ErrorKind.CONNECTION, "stream cut before its end")
        reason = self._reason
        if reason == "stop" and self._tool_calls:
            reason = "tool_calls"
        info = self._info
        if info is not None and (self._raw_usage is not None or self._refusal is not None):
            refusal = "".join(self._refusal) if self._refusal is not None else None
            info = replace(info, usage=self._raw_usage, refusal=refusal)
        return StreamFinish(reason, self._usage, info)

    def _in_band(self, message: str) -> StreamBroken:
        return self._broken(kind_of_message(message), message)

    def _broken(self, kind: ErrorKind, message: str) -> StreamBroken:
        return StreamBroken(kind, message, endpoint=self._endpoint)
