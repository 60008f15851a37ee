"""Server-sent events: the framing both OpenAI and Anthropic stream in.

Hand-written rather than taken from a library because this is the hot path: every
token of every streamed answer passes through `iter_sse`. It reads whatever the
socket delivered (`iter_any`, one await per network read rather than one per line),
splits lines with `bytes.find`, and hands `data` over as bytes so that orjson parses
it without a decode/encode round trip.

Deliberate departures from the WHATWG algorithm, all on the lenient side:
- Lines end with LF or CRLF. A bare CR as a line ending (legal, never seen from an LLM
  API) is not recognised.
- At end of input an event whose lines are complete but which lacks its closing blank
  line is still dispatched (some servers end with `data: [DONE]\\n`). A line cut in
  the middle is dropped: it is a truncated payload, and the caller decides what a
  stream without its end means.
- `id` and `retry` are ignored: a broken LLM stream is never resumed by reconnecting,
  the router continues it on another attempt instead.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import NamedTuple, Protocol

# No single event of a chat stream comes anywhere near this; a peer that sends more
# without a line break is broken or hostile, and we must not buffer it forever.
MAX_EVENT_BYTES = 8 * 1024 * 1024

_LF = b"\n"
_CR = 13  # b"\r"[0]
_COLON = 58  # b":"[0]


class SseEvent(NamedTuple):
    """One dispatched event. `event` is "message" unless the server named it."""

    event: str
    data: bytes


class ByteChunks(Protocol):
    """A response body read as the network delivers it (aiohttp's StreamReader, h1's)."""

    def iter_any(self) -> AsyncIterator[bytes]: ...


class SseError(ValueError):
    """The byte stream is not a well-formed event stream (an event over the size bound)."""


async def iter_sse(
    content: ByteChunks, *, max_event_bytes: int = MAX_EVENT_BYTES
) -> AsyncIterator[SseEvent]:
    """Decode the events of an SSE response body, in order.

    Transport errors from `content` (a cut connection, a bad chunk) propagate
    unchanged; the caller translates them. Raises `SseError` when one event or one
    line exceeds `max_event_bytes`.
    """
    event = ""
    data: list[bytes] = []
    size = 0  # data bytes held for the event being built
    partial: list[bytes] = []  # pieces of a line that spans network reads
    pending = 0  # their length

    async for chunk in content.iter_any():
        start = 0
        while True:
            end = chunk.find(_LF, start)
            if end < 0:
                break
            if partial:
                partial.append(chunk[start:end])
                line = b"".join(partial)
                partial.clear()
                pending = 0
            else:
                line = chunk[start:end]
            start = end + 1
            if line and line[-1] == _CR:
                line = line[:-1]

            if not line:  # a blank line dispatches the event being built
                if data:
                    yield SseEvent(
                        event or "message", data[0] if len(data) == 1 else _LF.join(data)
                    )
                    data = []
                event = ""
                size = 0
                continue
            if line[0] == _COLON:  # a comment: keep-alives such as ": ping"
                continue
            name, _, value = line.partition(b":")
            if value[:1] == b" ":
                value = value[1:]
            if name == b"data":
                data.append(value)
                size += len(value)
            elif name == b"event":
                event = value.decode("utf-8", "replace")
        if start < len(chunk):
            partial.append(chunk[start:])
            pending += len(chunk) - start
        if size + pending > max_event_bytes:
            raise SseError(f"an event of more than {max_event_bytes} bytes")

    if data:
        yield SseEvent(event or "message", data[0] if len(data) == 1 else _LF.join(data))
