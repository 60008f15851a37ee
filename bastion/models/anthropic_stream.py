"""Decoding of a streamed Anthropic Messages answer (SSE events → `StreamEvent`s).

Split from `anthropic_wire.py` because it is the per-token hot path and has state.
"""

from __future__ import annotations

from typing import Any

import orjson

from bastion.models.anthropic_wire import error_kind, finish_reason, input_tokens
from bastion.models.http_errors import error_message
from bastion.models.sse import SseEvent
from bastion.resilience.errors import ErrorKind, StreamBroken, kind_of_message
from bastion.types import StreamEvent, StreamFinish, TextDelta, ToolCallDelta, Usage


class EventDecoder:
    """Turns the SSE events of one streamed Messages answer into `StreamEvent`s.

    Feed events in order until `done` (message_stop), then call `finish()` once —
    also when the body ended before message_stop. Tool calls are numbered 0, 1, ...
    in the order they start, as OpenAI numbers them, whatever their content-block
    index (text blocks count there too).
    """

    __slots__ = (
        "_args_seen",
        "_endpoint",
        "_input",
        "_output",
        "_reason",
        "_strip_leading",
        "_tools",
        "done",
    )

    def __init__(self, endpoint: str, *, strip_leading: bool = False) -> None:
        self._endpoint = endpoint
        self._strip_leading = strip_leading
        self._reason: str | None = None
        self._input = 0
        self._output = 0
        self._tools: dict[int, int] = {}  # content-block index → tool-call number
        self._args_seen: set[int] = set()
        self.done = False

    def feed(self, event: SseEvent) -> list[StreamEvent]:
        """The content events in one SSE event; empty for pings and bookkeeping."""
        try:
            data = orjson.loads(event.data)
        except orjson.JSONDecodeError:
            if event.event == "error":
                text = event.data.decode("utf-8", "replace")
                raise self._broken(kind_of_message(text), text) from None
            raise self._broken(
                ErrorKind.PROTOCOL, f"malformed event: {event.data[:200]!r}"
            ) from None
        if not isinstance(data, dict):
            raise self._broken(ErrorKind.PROTOCOL, f"event is not an object: {event.data[:200]!r}")
        kind = data.get("type") or event.event
        try:
            if kind == "content_block_delta":  # by far the most frequent: first
                return self._delta(data["index"], data["delta"])
            if kind == "content_block_start":
                return self._block_start(data["index"], data["content_block"])
            if kind == "content_block_stop":
                return self._block_stop(data["index"])
            if kind == "message_start":
                usage = data["message"].get("usage") or {}
                self._input = input_tokens(usage)
                self._output = usage.get("output_tokens") or 0
            elif kind == "message_delta":
                reason = (data.get("delta") or {}).get("stop_reason")
                if reason is not None:
                    self._reason = reason
                usage = data.get("usage") or {}
                if isinstance(usage.get("output_tokens"), int):
                    self._output = usage["output_tokens"]
                if isinstance(usage.get("input_tokens"), int):  # newer APIs repeat it here
                    self._input = input_tokens(usage)
            elif kind == "message_stop":
                self.done = True
            elif kind == "error" or event.event == "error":
                error = data.get("error")
                raise self._broken(error_kind(error), error_message(data) or "error event")
        except (KeyError, TypeError, AttributeError) as exc:
            raise self._broken(ErrorKind.PROTOCOL, f"unexpected event shape ({exc!r})") from exc
        # ping and event types added after this was written carry no content.
        return []

    def _delta(self, index: int, delta: dict[str, Any]) -> list[StreamEvent]:
        kind = delta.get("type")
        if kind == "text_delta":
            return self._text(delta["text"])
        if kind == "input_json_delta":
            piece = delta.get("partial_json")
            if piece and index in self._tools:
                self._args_seen.add(index)
                return [ToolCallDelta(self._tools[index], arguments=piece)]
        return []  # thinking, signatures, citations: not part of the answer text

    def _block_start(self, index: int, block: dict[str, Any]) -> list[StreamEvent]:
        kind = block.get("type")
        if kind == "text":
            return self._text(block.get("text") or "")
        if kind != "tool_use":
            return []
        number = len(self._tools)
        self._tools[index] = number
        out: list[StreamEvent] = [ToolCallDelta(number, id=block["id"], name=block["name"])]
        if block.get("input"):  # always {} in practice, but do not lose it if not
            self._args_seen.add(index)
            out.append(ToolCallDelta(number, arguments=orjson.dumps(block["input"]).decode()))
        return out

    def _block_stop(self, index: int) -> list[StreamEvent]:
        if index in self._tools and index not in self._args_seen:
            # A call without arguments streams no JSON at all; "{}" keeps the
            # accumulated arguments parseable, as complete() gives them.
            return [ToolCallDelta(self._tools[index], arguments="{}")]
        return []

    def _text(self, text: str) -> list[StreamEvent]:
        if self._strip_leading:
            text = text.lstrip()
            if not text:
                return []
            self._strip_leading = False
        return [TextDelta(text)] if text else []

    def finish(self) -> StreamFinish:
        """The one closing event, or StreamBroken if the stream did not really finish."""
        if not self.done:
            raise self._broken(ErrorKind.CONNECTION, "stream cut before its end")
        if self._reason is None:
            raise self._broken(ErrorKind.PROTOCOL, "stream ended without a finish reason")
        return StreamFinish(finish_reason(self._reason), Usage(self._input, self._output))

    def _broken(self, kind: ErrorKind, message: str) -> StreamBroken:
        return StreamBroken(kind, message, endpoint=self._endpoint)
