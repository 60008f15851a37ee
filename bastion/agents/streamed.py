"""One model step read from a `RouterStream`: text passed on as it arrives, tool-call
deltas gathered, and the step's `ChatResponse` built at the end."""

from __future__ import annotations

from collections.abc import AsyncGenerator

from bastion.agents.events import AgentEvent, ModelSwitched
from bastion.resilience.errors import ErrorKind, StreamBroken
from bastion.routing.streaming import RouterStream
from bastion.types import (
    ChatResponse,
    Message,
    StreamError,
    StreamFinish,
    TextDelta,
    ToolCall,
    ToolCallDelta,
    Usage,
)


class StreamedStep:
    """Iterate `events()` once; then `response` is the whole answer.

    `ModelSwitched` comes before the first text when the endpoint serving this step is
    not `previous` (the one that served the step before). With `hold`, text is kept
    back instead of passed on (`text` has it all), for the caller to process first.
    A stream that breaks beyond repair raises `StreamBroken` of the kind it reported.
    """

    __slots__ = ("_hold", "_index", "_previous", "_stream", "response")

    def __init__(self, stream: RouterStream, previous: str | None, index: int, hold: bool) -> None:
        self._stream = stream
        self._previous = previous
        self._index = index
        self._hold = hold
        self.response: ChatResponse | None = None

    async def events(self) -> AsyncGenerator[AgentEvent, None]:
        stream = self._stream
        text: list[str] = []
        calls: dict[int, list[str]] = {}
        names: dict[int, tuple[str, str]] = {}
        finish: StreamFinish | None = None
        first = True
        try:
            async for event in stream:
                if first:
                    first = False
                    serving = stream.endpoint or ""
                    if self._previous is not None and serving != self._previous:
                        yield ModelSwitched(self._previous, serving, self._index)
                if isinstance(event, TextDelta):
                    text.append(event.text)
                    if not self._hold:
                        yield event
                elif isinstance(event, ToolCallDelta):
                    calls.setdefault(event.index, []).append(event.arguments)
                    if event.id is not None or event.name is not None:
                        old = names.get(event.index, ("", ""))
                        names[event.index] = (event.id or old[0], event.name or old[1])
                elif isinstance(event, StreamError):
                    raise _broken(event, stream.endpoint or "")
                else:
                    finish = event
        finally:
            if finish is None:
                await stream.aclose()
        if finish is None:  # pragma: no cover - the router always ends with a finish
            raise StreamBroken(ErrorKind.PROTOCOL, "stream ended without a finish")
        tool_calls = tuple(
            ToolCall(*names.get(i, ("", "")), "".join(parts)) for i, parts in sorted(calls.items())
        )
        self.response = ChatResponse(
            Message("assistant", "".join(text) or None, tool_calls),
            finish.finish_reason,
            finish.usage or Usage(),
            stream.model or "",
            stream.endpoint or "",
            stream.attempts,
            stream.degraded,
        )


def _broken(event: StreamError, endpoint: str) -> StreamBroken:
    try:
        kind = ErrorKind(event.kind)
    except ValueError:
        kind = ErrorKind.UNKNOWN
    return StreamBroken(kind, event.message, endpoint=endpoint)
