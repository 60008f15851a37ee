"""Streams that fail over, before and after the first token.

Before the first content arrives nothing has been sent, so a failure moves to the
next target invisibly. After content was sent, the next target continues from what
the caller already has (see `continuation`), so the caller reads one stream with no
repeated text; the seam is an event, not a visible hiccup. If no target can continue,
the stream ends with a `StreamError` and `finish_reason="error"` — never a clean end
on a truncated answer. Tool-call deltas are held until their attempt finishes, since
half a tool call cannot be continued.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass

from bastion.observability.events import StreamSeam
from bastion.resilience.errors import ErrorKind, StreamBroken
from bastion.routing.assemble import Assembly
from bastion.routing.attempts import RequestRun
from bastion.routing.continuation import ContinuationAligner, Mode, continuation_request
from bastion.routing.endpoints import EndpointRuntime
from bastion.routing.engine import AttemptLoop
from bastion.routing.plan import Candidate
from bastion.routing.timing import TimedStream
from bastion.types import (
    AttemptRecord,
    ChatRequest,
    ChatResponse,
    RouterStreamEvent,
    RuntimeContext,
    StreamError,
    StreamEvent,
    StreamFinish,
    TextDelta,
    ToolCallDelta,
    Usage,
)

Degrade = Callable[[RequestRun, ChatRequest, RuntimeContext], Awaitable[str | ChatResponse | None]]


@dataclass(slots=True)
class _Segment:
    """What one attempt has produced so far."""

    mode: Mode | None
    aligner: ContinuationAligner | None
    tools: list[ToolCallDelta]
    ttft: float | None = None
    started: float = 0.0
    sent_before: int = 0  # characters the client had when this attempt began


@dataclass(frozen=True, slots=True)
class UsageReport:
    """A stream's consumption across all its attempts.

    The final `usage` a stream reports is the serving attempt's own count: after a
    seam its prompt includes the partial answer it continued, and its completion only
    the continuation. `usage_total` is what the upstreams reported: only an attempt
    that finishes reports usage (providers count at the end), so it is that attempt's
    count; the text that attempts which broke mid-answer streamed is estimated at four
    characters a token in `estimated_unreported_completion_tokens`.
    """

    attempts: int
    seams: int
    usage_total: Usage
    estimated_unreported_completion_tokens: int


@dataclass(frozen=True, slots=True)
class _Opened:
    """A stream that gave its first event; `mode` says how it continues `sent`."""

    stream: TimedStream[StreamEvent]
    first: StreamEvent | None
    mode: Mode | None


async def _close_opened(opened: object) -> None:
    if isinstance(opened, _Opened):
        await opened.stream.aclose()


class RouterStream:
    """An async iterator of `TextDelta`, `ToolCallDelta`, then `StreamFinish` (preceded
    by a `StreamError` if the answer could not be completed).

    Once the first event is out, `endpoint` and `model` name what is serving it; after
    the end, `attempts` lists every attempt and `degraded` tells whether the answer was
    the group's degraded one. Errors that occur before anything was sent (an unknown
    model, every target failing) are raised from the first `__anext__`.
    """

    def __init__(
        self,
        begin: Callable[[], Awaitable[RequestRun]],
        request: ChatRequest,
        context: RuntimeContext,
        degrade: Degrade,
    ) -> None:
        self._begin = begin
        self._request = request
        self._context = context
        self._degrade = degrade
        self._events: AsyncIterator[RouterStreamEvent] | None = None
        self.request_id: str | None = None
        self.endpoint: str | None = None
        self.model: str | None = None
        self.attempts: tuple[AttemptRecord, ...] = ()
        self.degraded = False
        self.seams = 0
        # When the attempt now serving began (router clock): what came before it is
        # failed attempts and backoff, what came after is the upstream's own time.
        self.serving_since: float | None = None
        self._attempts: list[AttemptRecord] | None = None
        # What the upstreams reported: only an attempt that finishes reports usage
        # (providers count at the end), so the characters that broken attempts
        # streamed are kept to estimate theirs.
        self.usage_total = Usage()
        self.unreported_chars = 0

    def usage_report(self) -> UsageReport:
        """What the whole request consumed, once the stream has ended (see
        `UsageReport`)."""
        return UsageReport(
            len(self.attempts), self.seams, self.usage_total, -(-self.unreported_chars // 4)
        )

    def attempts_so_far(self) -> tuple[AttemptRecord, ...]:
        """The attempts made until now (all of them, once the stream has ended)."""
        return tuple(self._attempts) if self._attempts is not None else self.attempts

    def __aiter__(self) -> RouterStream:
        return self

    async def __anext__(self) -> RouterStreamEvent:
        if self._events is None:
            self._events = self._run()
        return await self._events.__anext__()

    async def aclose(self) -> None:
        if self._events is not None:
            await self._events.aclose()  # type: ignore[attr-defined]

    async def collect(self) -> ChatResponse:
        """Read the whole stream into one answer (for callers that want both)."""
        assembly = Assembly()
        finish = StreamFinish("error")
        error: StreamError | None = None
        async for event in self:
            if isinstance(event, TextDelta | ToolCallDelta):
                assembly.add(event)
            elif isinstance(event, StreamError):
                error = event
            else:
                finish = event
        if error is not None:
            raise StreamBroken(ErrorKind(error.kind), error.message, endpoint=self.endpoint or "")
        return assembly.response(
            finish,
            model=self.model or "",
            endpoint=self.endpoint or "",
            attempts=self.attempts,
            degraded=self.degraded,
        )

    # --- the failover loop ---------------------------------------------------------

    async def _run(self) -> AsyncIterator[RouterStreamEvent]:
        run = await self._begin()
        self.request_id = run.request_id
        self._attempts = run.attempts
        clock = run.core.clock
        sent = ""
        original: tuple[Exception, ErrorKind] | None = None
        request = self._request

        async def open_stream(candidate: Candidate) -> _Opened:
            rt = candidate.runtime
            mode: Mode | None = None
            asked = request
            if sent:
                mode = "prefill" if rt.accepts_prefill() else "instruct"
                asked = continuation_request(request, sent, mode)
            stream = TimedStream(
                rt.model.stream(asked),
                rt.endpoint.timeouts,
                remaining=run.remaining(),
                endpoint=rt.id,
                first_token=rt.first_token_limit(),
            )
            try:
                return _Opened(stream, await stream.next(), mode)
            except BaseException:
                await stream.aclose()
                raise

        loop = AttemptLoop(run, discard=_close_opened)
        async for attempt in loop:
            with attempt:
                loop.hedging = not sent
                opened = await attempt.call(open_stream, hedge_on="ttft")
                rt = attempt.candidate.runtime
                segment = _Segment(
                    opened.mode,
                    ContinuationAligner(sent) if opened.mode is not None else None,
                    [],
                    clock.now() - attempt.started,
                    attempt.started,
                    len(sent),
                )
                stream, event = opened.stream, opened.first
                try:
                    while event is not None:
                        if isinstance(event, TextDelta):
                            aligner = segment.aligner
                            if aligner is None and self.endpoint == rt.id:
                                # The common case, per token: nothing to align or commit.
                                sent += event.text
                                yield event
                            else:
                                text = aligner.feed(event.text) if aligner else event.text
                                if text:
                                    self._commit(run, rt, segment, len(sent))
                                    sent += text
                                    # The upstream's logprobs belong to its piece as
                                    # sent; a piece the aligner trimmed or held has none.
                                    yield (
                                        event
                                        if text == event.text
                                        else TextDelta(text, None, event.info)
                                    )
                        elif isinstance(event, ToolCallDelta):
                            segment.tools.append(event)
                        elif isinstance(event, StreamError):  # a Router used as a model
                            raise StreamBroken(ErrorKind(event.kind), event.message, endpoint=rt.id)
                        else:
                            break
                        event = await stream.next()
                    if not isinstance(event, StreamFinish):
                        raise StreamBroken(
                            ErrorKind.PROTOCOL, "stream ended without a finish", endpoint=rt.id
                        )
                    rest = segment.aligner.flush() if segment.aligner else ""
                finally:
                    # Closed now rather than left to the event loop's finaliser, which
                    # would cost a task and a loop turn per stream.
                    await stream.aclose()
                self._commit(run, rt, segment, len(sent))
                if rest:
                    sent += rest
                    yield TextDelta(rest)
                for delta in segment.tools:
                    yield delta
                attempt.succeed(ttft=segment.ttft, usage=event.usage)
                run.finish(rt.id, True)
                self.attempts = tuple(run.attempts)
                self.usage_total = event.usage or Usage()
                self.unreported_chars = segment.sent_before
                yield StreamFinish(event.finish_reason, event.usage or Usage(), event.info)
                return
            if sent and original is None and attempt.outcome is not None:
                original = (run.errors[-1], attempt.outcome.classification.kind)
        if loop.returned and not sent:
            run.finish(None, False)
            raise run.error()
        async for tail in self._give_up(run, sent, original):
            yield tail

    def _commit(self, run: RequestRun, rt: EndpointRuntime, segment: _Segment, sent: int) -> None:
        """Name `rt` as the server of what follows; a change of server is a seam."""
        if self.endpoint == rt.id and segment.mode is None:
            return
        previous = self.endpoint
        self.serving_since = segment.started
        self.endpoint = rt.id
        self.model = rt.endpoint.model
        if previous is not None and segment.mode is not None:
            self.seams += 1
            trimmed = segment.aligner.trimmed if segment.aligner else 0
            run.core.bus.emit(
                StreamSeam(run.request_id, previous, rt.id, sent, segment.mode, trimmed)
            )
            segment.mode = None  # one seam per segment

    async def _give_up(
        self,
        run: RequestRun,
        sent: str,
        original: tuple[Exception, ErrorKind] | None,
    ) -> AsyncIterator[RouterStreamEvent]:
        self.attempts = tuple(run.attempts)
        if not sent:
            produced = await self._degrade(run, self._request, self._context)
            if produced is None:
                run.finish(None, False)
                raise run.error()
            run.finish("degraded", True)
            self.degraded = True
            self.endpoint = self.model = "degraded"
            text = produced.text if isinstance(produced, ChatResponse) else produced
            yield TextDelta(text)
            yield StreamFinish("stop", Usage())
            return
        run.finish(None, False)
        # The failure that broke the stream is the one to report, not whatever the
        # attempts to continue it ran into.
        error, kind = original if original is not None else (None, ErrorKind.UNKNOWN)
        message = (
            f"the stream broke after {len(sent)} characters ({error}) and no target "
            f"could continue it ({len(run.attempts)} attempts)"
        )
        yield StreamError(kind.value, message, self.attempts)
        self.unreported_chars = len(sent)
        yield StreamFinish("error", self.usage_total)
