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
from bastion.resilience.retry import Action
from bastion.routing.attempts import RequestRun
from bastion.routing.continuation import ContinuationAligner, Mode, continuation_request
from bastion.routing.endpoints import EndpointRuntime
from bastion.routing.hedging import open_hedged_stream
from bastion.routing.timing import TimedStream
from bastion.types import (
    AttemptRecord,
    ChatRequest,
    ChatResponse,
    Message,
    RouterStreamEvent,
    RuntimeContext,
    StreamError,
    StreamEvent,
    StreamFinish,
    TextDelta,
    ToolCall,
    ToolCallDelta,
    Usage,
)

Degrade = Callable[[RequestRun, ChatRequest, RuntimeContext], Awaitable[str | ChatResponse | None]]


@dataclass(slots=True)
class _Segment:
    """What one attempt has produced so far."""

    mode: Mode | None
    trimmer: ContinuationAligner | None
    tools: list[ToolCallDelta]
    ttft: float | None = None
    started: float = 0.0


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
        text: list[str] = []
        calls: dict[int, list[str]] = {}
        names: dict[int, tuple[str, str]] = {}
        finish = StreamFinish("error")
        error: StreamError | None = None
        async for event in self:
            if isinstance(event, TextDelta):
                text.append(event.text)
            elif isinstance(event, ToolCallDelta):
                calls.setdefault(event.index, []).append(event.arguments)
                if event.id is not None or event.name is not None:
                    old = names.get(event.index, ("", ""))
                    names[event.index] = (event.id or old[0], event.name or old[1])
            elif isinstance(event, StreamError):
                error = event
            else:
                finish = event
        if error is not None:
            raise StreamBroken(ErrorKind(error.kind), error.message, endpoint=self.endpoint or "")
        tool_calls = tuple(
            ToolCall(names.get(i, ("", ""))[0], names.get(i, ("", ""))[1], "".join(parts))
            for i, parts in sorted(calls.items())
        )
        return ChatResponse(
            message=Message("assistant", "".join(text) or None, tool_calls),
            finish_reason=finish.finish_reason,
            usage=finish.usage or Usage(),
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
        usage = Usage()
        original: tuple[Exception, ErrorKind] | None = None
        pending = list(run.plan.candidates)
        returned = False
        while pending and not returned:
            candidate = pending.pop(0)
            if not run.eligible(candidate):
                continue
            retries = 0
            while run.remaining() > 0 and run.admit(candidate.runtime, retry=retries > 0):
                rt = candidate.runtime
                mode: Mode | None = None
                request = self._request
                if sent:
                    mode = "prefill" if rt.accepts_prefill() else "instruct"
                    request = continuation_request(request, sent, mode)
                segment = _Segment(mode, ContinuationAligner(sent) if mode else None, [])
                started = clock.now()
                hedge = run.plan.group.hedge if not sent and retries == 0 else None
                first: StreamEvent | None = None
                if hedge is not None:
                    opened = await open_hedged_stream(run, candidate, pending, request, hedge)
                    if opened is None:
                        break
                    candidate, stream, first, started = opened
                    rt = candidate.runtime
                else:
                    stream = TimedStream(
                        rt.model.stream(request),
                        rt.endpoint.timeouts,
                        remaining=run.remaining(),
                        endpoint=rt.id,
                    )
                event: StreamEvent | None = None
                try:
                    event = first if first is not None else await stream.next()
                    segment.started = started
                    segment.ttft = clock.now() - started
                    while event is not None:
                        if isinstance(event, TextDelta):
                            trimmer = segment.trimmer
                            if trimmer is None and segment.mode is None and self.endpoint == rt.id:
                                # The common case, per token: nothing to trim or commit.
                                sent += event.text
                                yield event
                            else:
                                text = trimmer.feed(event.text) if trimmer else event.text
                                if text:
                                    self._commit(run, rt, segment, len(sent))
                                    sent += text
                                    yield TextDelta(text)
                        elif isinstance(event, ToolCallDelta):
                            segment.tools.append(event)
                        else:
                            break
                        event = await stream.next()
                    if not isinstance(event, StreamFinish):
                        raise StreamBroken(
                            ErrorKind.PROTOCOL, "stream ended without a finish", endpoint=rt.id
                        )
                except BaseException as exc:
                    await stream.aclose()
                    if not isinstance(exc, Exception):  # cancelled, or the consumer left
                        run.release(rt)
                        run.finish(None, False, cancelled=True)
                        raise
                    held = segment.trimmer.flush() if segment.trimmer else ""
                    if held:
                        self._commit(run, rt, segment, len(sent))
                        sent += held
                        yield TextDelta(held)
                    outcome = run.failed(candidate, exc, started, retries=retries)
                    if sent and original is None:
                        original = (exc, outcome.classification.kind)
                    if (
                        outcome.classification.kind is ErrorKind.PREFILL_REJECTED
                        and mode == "prefill"
                    ):
                        continue  # the same endpoint, now asked without a prefill
                    action = outcome.decision.action
                    if action is Action.RETRY:
                        await clock.sleep(outcome.decision.delay)
                        retries += 1
                        continue
                    if action is Action.RETURN:
                        if not sent:
                            run.finish(None, False)
                            raise run.error() from None
                        returned = True
                    break
                rest = segment.trimmer.flush() if segment.trimmer else ""
                self._commit(run, rt, segment, len(sent))
                if rest:
                    sent += rest
                    yield TextDelta(rest)
                for delta in segment.tools:
                    yield delta
                # Closed now rather than left to the event loop's finaliser, which would
                # cost a task and a loop turn per stream.
                await stream.aclose()
                run.succeeded(rt, started, ttft=segment.ttft, usage=event.usage)
                run.finish(rt.id, True)
                self.attempts = tuple(run.attempts)
                usage = usage + (event.usage or Usage())
                yield StreamFinish(event.finish_reason, usage)
                return
        async for tail in self._give_up(run, sent, original, usage):
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
            trimmed = segment.trimmer.trimmed if segment.trimmer else 0
            run.core.bus.emit(
                StreamSeam(run.request_id, previous, rt.id, sent, segment.mode, trimmed)
            )
            segment.mode = None  # one seam per segment

    async def _give_up(
        self,
        run: RequestRun,
        sent: str,
        original: tuple[Exception, ErrorKind] | None,
        usage: Usage,
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
        yield StreamFinish("error", usage)
