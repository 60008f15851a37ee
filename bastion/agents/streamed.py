"""One model step read from a `RouterStream`: text passed on as it arrives, tool-call
deltas gathered, and the step's `ChatResponse` built at the end."""

from __future__ import annotations

from collections.abc import AsyncGenerator

from bastion.agents.events import AgentEvent, ModelSwitched
from bastion.resilience.errors import ErrorKind, StreamBroken
from bastion.routing.assemble import Assembly, broken_by
from bastion.routing.streaming import RouterStream
from bastion.types import (
    ChatResponse,
    StreamError,
    StreamFinish,
    TextDelta,
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
        assembly = Assembly()
        finish: StreamFinish | None = None
        first = True
        try:
            async for event in stream:
                if first:
                    first = False
                    serving = stream.endpoint or ""
                    if self._previous is not None and serving != self._previous:
                        yield ModelSwitched(self._previous, serving, self._index)
                if isinstance(event, TextDelta | ToolCallDelta):
                    assembly.add(event)
                    if isinstance(event, TextDelta) and not self._hold:
                        yield event
                elif isinstance(event, StreamError):
                    raise broken_by(event, stream.endpoint or "")
                else:
                    finish = event
        finally:
            if finish is None:
                await stream.aclose()
        if finish is None:  # pragma: no cover - the router always ends with a finish
            raise StreamBroken(ErrorKind.PROTOCOL, "stream ended without a finish")
        response = ChatResponse(
            assembly.message(),
            finish.finish_reason,
            finish.usage or Usage(),
            stream.model or "",
            stream.endpoint or "",
            stream.attempts,
            stream.degraded,
        )
        self.response = response
