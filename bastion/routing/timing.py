"""Time bounds on one attempt: the whole call, the first token, the gaps between chunks."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable
from typing import Generic, TypeVar

from bastion.models.base import Timeouts
from bastion.resilience.errors import UpstreamTimeout

T = TypeVar("T")


async def within(awaitable: Awaitable[T], limit: float, *, phase: str, endpoint: str) -> T:
    """Await with a bound; a miss becomes UpstreamTimeout(phase)."""
    try:
        async with asyncio.timeout(limit):
            return await awaitable
    except TimeoutError as exc:
        if isinstance(exc, UpstreamTimeout):
            raise
        raise UpstreamTimeout(phase, limit, endpoint=endpoint) from exc


class TimedStream(Generic[T]):
    """Reads a provider stream under its attempt's bounds.

    The first event must come within `first_token` of the call (the endpoint's own
    value, or the one its runtime learned; it covers connect and headers too: a silent
    upstream is left then); every later one within `idle` of the previous; all of it
    within `total`, itself cut short by the request's deadline.

    One watchdog timer serves the whole stream instead of a timeout per chunk: each read
    only moves the deadline, and the timer, when it fires early, re-arms itself for the
    current deadline. A chunk then costs a clock read, not a timer (hot path: a long
    answer is hundreds of chunks).
    """

    __slots__ = (
        "_deadline",
        "_end",
        "_endpoint",
        "_expired",
        "_first_token",
        "_idle",
        "_it",
        "_loop",
        "_reader",
        "_seen",
        "_timer",
    )

    def __init__(
        self,
        it: AsyncIterator[T],
        timeouts: Timeouts,
        *,
        remaining: float,
        endpoint: str,
        first_token: float,
    ) -> None:
        self._it = it
        self._loop = asyncio.get_running_loop()
        self._end = self._loop.time() + min(timeouts.total, remaining)
        self._first_token = first_token
        self._idle = timeouts.idle
        self._endpoint = endpoint
        self._seen = False
        self._deadline = 0.0
        self._timer: asyncio.TimerHandle | None = None
        self._reader: asyncio.Task[object] | None = None
        self._expired = False

    async def next(self) -> T | None:
        """The next event, or None at the end; UpstreamTimeout on a miss."""
        now = self._loop.time()
        limit = self._idle if self._seen else self._first_token
        phase = "idle" if self._seen else "first_token"
        if self._end - now < limit:
            limit, phase = max(self._end - now, 0.0), "total"
        self._deadline = now + limit
        if self._timer is None or self._timer.when() > self._deadline:
            if self._timer is not None:
                self._timer.cancel()
            self._timer = self._loop.call_at(self._deadline, self._fire)
        reader = asyncio.current_task()
        self._reader = reader
        try:
            event = await self._it.__anext__()
        except StopAsyncIteration:
            return None
        except asyncio.CancelledError:
            if self._expired and reader is not None and reader.uncancel() == 0:
                raise UpstreamTimeout(phase, limit, endpoint=self._endpoint) from None
            raise
        finally:
            self._reader = None
        self._seen = True
        return event

    def _fire(self) -> None:
        self._timer = None
        reader = self._reader
        if reader is None:
            return  # between reads: the next read arms the timer again
        if self._loop.time() < self._deadline:
            self._timer = self._loop.call_at(self._deadline, self._fire)
            return
        self._expired = True
        reader.cancel()

    async def aclose(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        close = getattr(self._it, "aclose", None)
        if close is not None:
            await close()
