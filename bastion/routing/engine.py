"""The attempt engine: the one loop that admits, calls, classifies, decides and releases.

`call_with_failover(core, spec, call)` is the whole of it for any call type: plan,
attempt, decide, return the first success or raise the error listing every attempt.

Every remote call the router makes goes through it — a complete answer, a stream, a
hedged race, and any other call type (a tool on an MCP server, a remote agent): the
engine is generic over *what* is called, a call being an async function of a
`Candidate`. Strategies are thin; the engine alone carries decisions out:

    loop = AttemptLoop(run)
    async for attempt in loop:
        with attempt:
            answer = await attempt.call(lambda c: c.runtime.model.complete(request))
            attempt.succeed(usage=answer.usage)
            return answer
    # the loop ended: every target failed (`loop.returned` if the error is final)

`with attempt` guarantees the slot it admitted is closed: a success recorded,
a failure classified and decided (the exception is swallowed; the loop acts on the
decision: sleep and retry here, fail over, or stop), or — when the caller is
cancelled or leaves — released with no verdict and the request ended as cancelled.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from types import TracebackType
from typing import Any, Generic, Literal, TypeVar

from bastion.observability.events import HedgeStarted, HedgeWon
from bastion.resilience.retry import Action
from bastion.routing.attempts import Outcome, RequestRun, Slot
from bastion.routing.core import RouterCore
from bastion.routing.endpoints import Ewma, M
from bastion.routing.groups import Hedge
from bastion.routing.plan import Candidate
from bastion.routing.spec import ModelSpec
from bastion.types import RuntimeContext, Usage

T = TypeVar("T")

HedgeOn = Literal["latency", "ttft"]


class _Decided(Exception):
    """A race ended with a failure whose outcome is already recorded."""

    def __init__(self, slot: Slot[Any], outcome: Outcome) -> None:
        super().__init__(outcome.decision.reason)
        self.slot = slot
        self.outcome = outcome


def hedge_delay(stats: Ewma, hedge: Hedge) -> float:
    """`multiplier` × the endpoint's mean (latency or time to first token), clamped to
    the group's bounds; `initial` until there is history."""
    base = hedge.initial if stats.mean is None else stats.mean * hedge.multiplier
    return min(max(base, hedge.min_delay), hedge.max_delay)


class Attempt(Generic[M]):
    """One step of the loop: a call on the current candidate (or a hedged race that
    starts there). Use as `with attempt:`; see the module docstring. (A plain context
    manager: its exit does no I/O, and two coroutines per request are measurable.)"""

    __slots__ = ("_loop", "outcome", "slot")

    def __init__(self, loop: AttemptLoop[M], slot: Slot[M]) -> None:
        self._loop = loop
        self.slot = slot
        self.outcome: Outcome | None = None

    @property
    def candidate(self) -> Candidate[M]:
        return self.slot.candidate

    @property
    def retries(self) -> int:
        return self.slot.retries

    @property
    def started(self) -> float:
        return self.slot.started

    def call(
        self, fn: Callable[[Candidate[M]], Awaitable[T]], *, hedge_on: HedgeOn = "latency"
    ) -> Awaitable[T]:
        """`fn(candidate)`, to be awaited; on the first attempt of a candidate in a
        group with `hedge:`, a race: after the hedge delay, the next candidate is asked
        too, the first success wins and the others are cancelled and released. A
        racer's failure is recorded as it happens; the loop acts on the last one's
        decision, so a quick 500 is retried exactly as without hedging. (Not itself a
        coroutine: the common, unhedged call costs no extra frame.)"""
        hedge = self._loop.hedge if self.slot.retries == 0 else None
        if hedge is None:
            return fn(self.slot.candidate)
        return self._race(fn, hedge, hedge_on)

    def succeed(
        self,
        *,
        ttft: float | None = None,
        usage: Usage | None = None,
        response_model: str | None = None,
    ) -> None:
        """Record the answer on the endpoint that gave it (see `Slot.succeed`)."""
        self.slot.succeed(ttft=ttft, usage=usage, response_model=response_model)

    def __enter__(self) -> Attempt[M]:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> bool:
        slot = self.slot
        # The loop and its attempt refer to each other until here: let go, so that a
        # request leaves no reference cycle for the garbage collector to find (measured:
        # ten more collections per thousand requests). A failure is settled again below.
        self._loop._last = None
        if exc is None:
            slot.release()  # ended with no verdict: nothing is owed to the endpoint
            return False
        if isinstance(exc, _Decided):
            self.slot, self.outcome = exc.slot, exc.outcome
        elif isinstance(exc, Exception) and slot.open:
            self.outcome = slot.fail(exc, alternative=self._loop.has_alternative())
        else:
            # Cancelled, or the consumer of a stream left: no verdict on the endpoint,
            # and the request ends on record.
            slot.release()
            self._loop.run.finish(None, False, cancelled=True)
            return False
        self._loop.settle(self)
        return True

    async def _race(
        self, fn: Callable[[Candidate[M]], Awaitable[T]], hedge: Hedge, hedge_on: HedgeOn
    ) -> T:
        loop = self._loop
        run = loop.run
        bus = run.core.bus
        primary = self.slot
        rt = primary.runtime
        delay = hedge_delay(rt.ttft if hedge_on == "ttft" else rt.latency, hedge)
        racers: dict[asyncio.Future[T], Slot[M]] = {
            asyncio.ensure_future(fn(primary.candidate)): primary
        }
        hedged = False
        try:
            while racers:
                done, _ = await asyncio.wait(
                    racers, timeout=None if hedged else delay, return_when=asyncio.FIRST_COMPLETED
                )
                if not done:
                    hedged = True
                    extra = loop.take_hedge()
                    if extra is not None:
                        if bus.active:
                            bus.emit(HedgeStarted(run.request_id, rt.id, extra.runtime.id, delay))
                        racers[asyncio.ensure_future(fn(extra.candidate))] = extra
                    continue
                winner: tuple[Slot[M], T] | None = None
                for task in done:
                    slot = racers.pop(task)
                    error = task.exception()
                    if error is None:
                        if winner is None:
                            winner = (slot, task.result())
                        else:  # a tie: the second success is a loser too
                            racers[task] = slot
                        continue
                    if not isinstance(error, Exception):
                        raise error
                    outcome = slot.fail(
                        error,
                        others_racing=bool(racers) or winner is not None,
                        alternative=loop.has_alternative(),
                    )
                    if outcome.decision.action is Action.RETURN or not (racers or winner):
                        raise _Decided(slot, outcome)
                if winner is not None:
                    self.slot = winner[0]
                    if bus.active:
                        for loser in racers.values():
                            bus.emit(
                                HedgeWon(run.request_id, winner[0].runtime.id, loser.runtime.id)
                            )
                    return winner[1]
            raise AssertionError("a race always ends with a winner or a decision")
        finally:
            for task in racers:
                task.cancel()
            for task, slot in racers.items():
                try:
                    result = await task
                except BaseException:
                    pass
                else:
                    await loop.discard(result)
                slot.release()


class AttemptLoop(Generic[M]):
    """The candidates of one request, tried in order; see the module docstring.

    Iterating yields admitted `Attempt`s. After each failed attempt the loop carries
    out the decision: waits the decided delay and retries the same candidate, fails
    over to the next eligible candidate that admits a call, or stops (`returned` is
    then set: the error is the caller's answer and no other target may be tried).
    The loop stops too when the request's deadline has passed. `hedging` may be
    turned off between attempts (a stream stops hedging once text was sent).
    `discard` closes the result of a hedge that lost (a stream's connection).
    """

    __slots__ = (
        "_current",
        "_discard",
        "_last",
        "_pending",
        "_retries",
        "hedging",
        "returned",
        "run",
    )

    def __init__(
        self,
        run: RequestRun[M],
        *,
        discard: Callable[[object], Awaitable[None]] | None = None,
    ) -> None:
        self.run = run
        self.hedging = True
        self.returned = False
        self._pending = list(run.plan.candidates)
        self._current: Candidate[M] | None = None
        self._retries = 0
        self._last: Attempt[M] | None = None
        self._discard = discard

    @property
    def hedge(self) -> Hedge | None:
        return self.run.plan.group.hedge if self.hedging else None

    def __aiter__(self) -> AttemptLoop[M]:
        return self

    async def __anext__(self) -> Attempt[M]:
        run = self.run
        last, self._last = self._last, None
        if last is not None and last.outcome is not None:
            decision = last.outcome.decision
            if decision.action is Action.RETURN:
                self.returned = True
                raise StopAsyncIteration
            if decision.action is Action.RETRY:
                try:
                    await run.core.clock.sleep(decision.delay)
                except asyncio.CancelledError:
                    run.finish(None, False, cancelled=True)
                    raise
                self._current = last.candidate
                self._retries = last.retries + 1
            else:
                self._current = None
        while run.remaining() > 0:
            candidate = self._current
            if candidate is None:
                candidate = self._next_candidate()
                if candidate is None:
                    break
                self._retries = 0
            slot = run.admit(candidate, retries=self._retries)
            if slot is None:
                self._current = None
                continue
            self._current = candidate
            attempt = Attempt(self, slot)
            self._last = attempt
            return attempt
        raise StopAsyncIteration

    def _next_candidate(self) -> Candidate[M] | None:
        while self._pending:
            candidate = self._pending.pop(0)
            if self.run.eligible(candidate):
                return candidate
        return None

    def has_alternative(self) -> bool:
        """Is another candidate left that could take the call now?"""
        for candidate in self._pending:
            rt = candidate.runtime
            if self.run.eligible(candidate) and not rt.full and rt.breaker.available():
                return True
        return False

    def settle(self, attempt: Attempt[M]) -> None:
        """Called by a failed attempt on exit: the next `__anext__` acts on it."""
        self._last = attempt

    def take_hedge(self) -> Slot[M] | None:
        """Admit the next pending candidate as a hedge: it spends that endpoint's retry
        budget, so hedging cannot double the load of a struggling fleet."""
        for index, candidate in enumerate(self._pending):
            rt = candidate.runtime
            if not self.run.eligible(candidate) or not rt.budget.try_spend():
                continue
            slot = self.run.admit(candidate, hedge=True)
            if slot is not None:
                del self._pending[index]
                return slot
        return None

    async def discard(self, result: object) -> None:
        if self._discard is not None:
            await self._discard(result)


async def call_with_failover(
    core: RouterCore[M],
    spec: ModelSpec,
    call: Callable[[Candidate[M]], Awaitable[T]],
    *,
    context: RuntimeContext | None = None,
    deadline: float | None = None,
) -> T:
    """Call `spec`'s targets in order until one answers: any call type (a tool on an
    MCP server, a remote agent), with the same policies, breakers, budgets, hedging
    and events as a chat completion. `call(candidate)` raises `UpstreamError`s (or any
    exception, classified by `classify`). Raises `FailoverError` listing every attempt,
    or `NoTargetAvailable`."""
    plan = await core.plan(spec, context if context is not None else RuntimeContext())
    limit = deadline if deadline is not None else core.options.deadline
    run = RequestRun(core, plan, deadline=limit, stream=False)
    async for attempt in AttemptLoop(run):
        with attempt:
            result = await attempt.call(call)
            attempt.succeed()
            run.finish(attempt.candidate.runtime.id, True)
            return result
    run.finish(None, False)
    raise run.error()
