"""Hedging: when the first answer is late, ask a second endpoint too; the first wins.

The delay is derived from what the primary has shown: `multiplier` × its mean time to
first token (for `complete`, its mean latency), clamped to the group's bounds. A hedge
spends the hedge endpoint's retry budget, so hedging cannot double the load of a
struggling fleet. The loser is cancelled at once and its connection closed.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import TypeVar

from bastion.observability.events import HedgeStarted, HedgeWon
from bastion.resilience.retry import Action
from bastion.routing.attempts import RequestRun
from bastion.routing.endpoints import Ewma
from bastion.routing.groups import Hedge
from bastion.routing.plan import Candidate
from bastion.routing.timing import TimedStream, within
from bastion.types import ChatRequest, ChatResponse, StreamEvent

T = TypeVar("T")


def hedge_delay(stats: Ewma, hedge: Hedge) -> float:
    base = hedge.initial if stats.mean is None else stats.mean * hedge.multiplier
    return min(max(base, hedge.min_delay), hedge.max_delay)


def _pick_hedge(run: RequestRun, pending: list[Candidate]) -> Candidate | None:
    for index, candidate in enumerate(pending):
        rt = candidate.runtime
        if run.eligible(candidate) and rt.budget.try_spend() and run.admit(rt):
            del pending[index]
            return candidate
    return None


async def _race(
    run: RequestRun,
    primary: Candidate,
    pending: list[Candidate],
    delay: float,
    start: Callable[[Candidate], Awaitable[T]],
    discard: Callable[[T], Awaitable[None]],
) -> tuple[Candidate, T, float] | None:
    """Run `start(primary)`; after `delay`, also `start` one hedge. Returns the first
    success, or None when every racer failed (each failure recorded on `run`)."""
    clock = run.core.clock
    bus = run.core.bus
    racers: dict[asyncio.Future[T], tuple[Candidate, float, bool]] = {
        asyncio.ensure_future(start(primary)): (primary, clock.now(), False)
    }
    hedged = False
    try:
        while racers:
            done, _ = await asyncio.wait(
                racers, timeout=None if hedged else delay, return_when=asyncio.FIRST_COMPLETED
            )
            if not done:
                hedged = True
                extra = _pick_hedge(run, pending)
                if extra is not None:
                    bus.emit(
                        HedgeStarted(run.request_id, primary.runtime.id, extra.runtime.id, delay)
                    )
                    racers[asyncio.ensure_future(start(extra))] = (extra, clock.now(), True)
                continue
            winner: tuple[Candidate, T, float] | None = None
            for task in done:
                candidate, started, is_hedge = racers.pop(task)
                error = task.exception()
                if error is None:
                    if winner is None:
                        winner = (candidate, task.result(), started)
                    else:  # a tie: the second success is a loser too
                        await discard(task.result())
                        run.release(candidate.runtime)
                    continue
                if not isinstance(error, Exception):
                    raise error
                outcome = run.failed(candidate, error, started, retries=0, hedge=is_hedge)
                if outcome.decision.action is Action.RETURN:
                    raise run.error() from None
            if winner is not None:
                for loser, (candidate, _, _) in list(racers.items()):
                    loser.cancel()
                    bus.emit(HedgeWon(run.request_id, winner[0].runtime.id, candidate.runtime.id))
                return winner
        return None
    finally:
        for task in racers:
            task.cancel()
        for task, (candidate, _, _) in racers.items():
            try:
                result = await task
            except BaseException:
                pass
            else:
                await discard(result)
            run.release(candidate.runtime)


async def hedged_call(
    run: RequestRun,
    primary: Candidate,
    pending: list[Candidate],
    request: ChatRequest,
    hedge: Hedge,
) -> tuple[Candidate, ChatResponse, float] | None:
    async def call(candidate: Candidate) -> ChatResponse:
        rt = candidate.runtime
        limit = min(rt.endpoint.timeouts.total, run.remaining())
        return await within(rt.model.complete(request), limit, phase="total", endpoint=rt.id)

    async def discard(_: ChatResponse) -> None:
        return None

    delay = hedge_delay(primary.runtime.latency, hedge)
    return await _race(run, primary, pending, delay, call, discard)


async def open_hedged_stream(
    run: RequestRun,
    primary: Candidate,
    pending: list[Candidate],
    request: ChatRequest,
    hedge: Hedge,
) -> tuple[Candidate, TimedStream[StreamEvent], StreamEvent | None, float] | None:
    """Open streams until one yields its first event; the others are closed."""

    async def open_stream(
        candidate: Candidate,
    ) -> tuple[TimedStream[StreamEvent], StreamEvent | None]:
        rt = candidate.runtime
        stream = TimedStream(
            rt.model.stream(request),
            rt.endpoint.timeouts,
            remaining=run.remaining(),
            endpoint=rt.id,
        )
        try:
            return stream, await stream.next()
        except BaseException:
            await stream.aclose()
            raise

    async def discard(opened: tuple[TimedStream[StreamEvent], StreamEvent | None]) -> None:
        await opened[0].aclose()

    delay = hedge_delay(primary.runtime.ttft, hedge)
    won = await _race(run, primary, pending, delay, open_stream, discard)
    if won is None:
        return None
    candidate, (stream, first), started = won
    return candidate, stream, first, started
