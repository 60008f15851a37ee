"""A streamed answer put back together: one `ChatResponse` from stream events.

A request that wants one whole answer may still be asked of the upstream as a stream
(the endpoint's `upstream_stream`): then the first-token and idle limits bound it as
they bound a stream, so a silent upstream is left after the first-token limit rather
than the whole `total`, and an answer that breaks off midway is an attempt that
failed, which the engine fails over like any other. Nothing has reached the caller yet,
so the next target answers afresh: a whole answer, with no seam in it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from bastion.models.openai_stream import assembled_answer
from bastion.resilience.clock import Clock
from bastion.resilience.errors import ErrorKind, StreamBroken
from bastion.routing.endpoints import EndpointRuntime
from bastion.routing.timing import TimedStream
from bastion.types import (
    AttemptRecord,
    ChatRequest,
    ChatResponse,
    Message,
    StreamError,
    StreamFinish,
    TextDelta,
    ToolCall,
    ToolCallDelta,
    Usage,
)


class Assembly:
    """Text, tool-call and logprob pieces gathered into one answer."""

    __slots__ = ("_calls", "_logprobs", "_names", "_text")

    def __init__(self) -> None:
        self._text: list[str] = []
        self._calls: dict[int, list[str]] = {}
        self._names: dict[int, tuple[str, str]] = {}
        self._logprobs: dict[str, list[Any]] | None = None

    def add(self, event: TextDelta | ToolCallDelta) -> None:
        if isinstance(event, TextDelta):
            self._text.append(event.text)
            if event.logprobs is not None:
                self._add_logprobs(event.logprobs)
            return
        self._calls.setdefault(event.index, []).append(event.arguments)
        if event.id is not None or event.name is not None:
            old = self._names.get(event.index, ("", ""))
            self._names[event.index] = (event.id or old[0], event.name or old[1])

    def _add_logprobs(self, logprobs: Any) -> None:
        # Per piece, OpenAI sends `{"content": [tokens...], "refusal": [...]}`; the whole
        # answer's logprobs are those lists joined.
        merged = self._logprobs if self._logprobs is not None else {}
        self._logprobs = merged
        for key, tokens in logprobs.items():
            if isinstance(tokens, list):
                merged.setdefault(key, []).extend(tokens)

    def message(self) -> Message:
        calls = tuple(
            ToolCall(*self._names.get(i, ("", "")), "".join(parts))
            for i, parts in sorted(self._calls.items())
        )
        return Message("assistant", "".join(self._text) or None, calls)

    def response(
        self,
        finish: StreamFinish,
        *,
        model: str,
        endpoint: str,
        attempts: tuple[AttemptRecord, ...] = (),
        degraded: bool = False,
    ) -> ChatResponse:
        """The answer; with what an OpenAI-compatible upstream said besides the content
        (`finish.info`), also `raw`: the chat completion it would have answered."""
        message = self.message()
        usage = finish.usage or Usage()
        info = finish.info
        raw = None
        if info is not None:
            raw = assembled_answer(info, message, finish.finish_reason, self._logprobs, usage)
            model = info.model or model
        return ChatResponse(
            message, finish.finish_reason, usage, model, endpoint, attempts, degraded, raw
        )


def broken_by(event: StreamError, endpoint: str) -> StreamBroken:
    """The failure a stream's in-band error stands for (a kind this version does not
    know counts as unknown)."""
    try:
        kind = ErrorKind(event.kind)
    except ValueError:
        kind = ErrorKind.UNKNOWN
    return StreamBroken(kind, event.message, endpoint=endpoint)


@dataclass(frozen=True, slots=True)
class Assembled:
    """An answer read from a stream, and how long its first event took."""

    response: ChatResponse
    ttft: float


async def complete_by_stream(
    rt: EndpointRuntime, request: ChatRequest, *, remaining: float, clock: Clock
) -> Assembled:
    """Ask `rt` for a stream and read it whole, under the attempt's time bounds (first
    token, idle, total and the request's `remaining` time)."""
    started = clock.now()
    stream = TimedStream(
        rt.model.stream(request),
        rt.endpoint.timeouts,
        remaining=remaining,
        endpoint=rt.id,
        first_token=rt.first_token_limit(),
    )
    assembly = Assembly()
    try:
        event = await stream.next()
        ttft = clock.now() - started
        while event is not None:
            if isinstance(event, StreamFinish):
                answer = assembly.response(event, model=rt.endpoint.model, endpoint=rt.id)
                return Assembled(answer, ttft)
            if isinstance(event, StreamError):  # a Router used as a model
                raise broken_by(event, rt.id)
            assembly.add(event)
            event = await stream.next()
    finally:
        await stream.aclose()
    raise StreamBroken(ErrorKind.PROTOCOL, "stream ended without a finish", endpoint=rt.id)
