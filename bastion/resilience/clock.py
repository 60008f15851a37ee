"""Time, injected: the clock every policy reads, a timeout measured on it, and counts
kept over a sliding window of it.

Policies never call `time.monotonic()` or `asyncio.sleep()` themselves; they take a
`Clock`. Production passes `SystemClock`; tests pass `FakeClock`, whose `sleep` moves
time forward at once, so code that waits for minutes runs in microseconds.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable
from typing import Protocol, TypeVar

T = TypeVar("T")


class Clock(Protocol):
    """A source of monotonic time and a way to wait on it."""

    def now(self) -> float:
        """Monotonic seconds; only differences between two readings mean anything."""
        ...

    async def sleep(self, seconds: float) -> None:
        """Wait `seconds` (a non-positive value only yields to the event loop)."""
        ...


class SystemClock:
    """The real clock: `time.monotonic()` and `asyncio.sleep()`."""

    def now(self) -> float:
        return time.monotonic()

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(max(0.0, seconds))


class FakeClock:
    """A clock that only moves when told to, for tests.

    `advance(s)` moves time forward. `sleep(s)` records `s` in `sleeps`, moves time
    forward by `s` and yields to the event loop once, so the code under test goes on
    at once. Concurrent sleepers each move the one shared time forward by their own
    amount: this clock orders nothing, it only makes waiting free.
    """

    def __init__(self, start: float = 0.0) -> None:
        self._now = start
        self.sleeps: list[float] = []

    def now(self) -> float:
        return self._now

    def advance(self, seconds: float) -> None:
        """Move time forward by `seconds` (never backward: the clock is monotonic)."""
        if seconds < 0:
            raise ValueError(f"a monotonic clock cannot go back (advance by {seconds})")
        self._now += seconds

    async def sleep(self, seconds: float) -> None:
        seconds = max(0.0, seconds)
        self.sleeps.append(seconds)
        self._now += seconds
        await asyncio.sleep(0)


# asyncio.timeout() reads the loop's clock, not an injected one; hence the parameter.
async def wait_for(clock: Clock, awaitable: Awaitable[T], timeout: float) -> T:  # noqa: ASYNC109
    """Await `awaitable`, or raise `TimeoutError` once `timeout` seconds pass on `clock`.

    Unlike `asyncio.wait_for`, the time is measured on the injected clock, so a hang
    under `FakeClock` times out at once. The awaitable runs as its own task and gets
    one turn of the event loop before the timer starts: an answer that needs no real
    waiting never costs (fake) time. On timeout or cancellation the task is cancelled
    and awaited, so nothing is left running.
    """
    task = asyncio.ensure_future(awaitable)
    timer: asyncio.Future[None] | None = None
    try:
        await asyncio.sleep(0)
        if not task.done():
            timer = asyncio.ensure_future(clock.sleep(timeout))
            await asyncio.wait({task, timer}, return_when=asyncio.FIRST_COMPLETED)
        if task.done():
            # An answer that arrives together with the timer still counts.
            return task.result()
        raise TimeoutError(f"no answer after {timeout:g}s")
    finally:
        for pending in (task, timer):
            if pending is not None and not pending.done():
                pending.cancel()
                await asyncio.wait({pending})
                if not pending.cancelled():
                    pending.exception()  # retrieved: asyncio must not warn about it later


class SlidingCounter:
    """A count over the last `window` seconds, kept in `buckets` equal slices of time.

    Counts age out a whole slice at a time, so the window covers between
    `window * (buckets - 1) / buckets` and `window` seconds of history; the cost of
    adding and reading is constant, whatever the rate.
    """

    def __init__(self, window: float, clock: Clock, *, buckets: int = 10) -> None:
        if not window > 0:
            raise ValueError(f"window must be positive, got {window}")
        if buckets < 1:
            raise ValueError(f"buckets must be at least 1, got {buckets}")
        self._now = clock.now
        self._width = window / buckets
        self._counts = [0] * buckets
        self._total = 0
        self._epoch = self._epoch_now()

    def _epoch_now(self) -> int:
        # `//` floors like math.floor, and saves a call: this runs on every request.
        return int(self._now() // self._width)

    def _roll(self, epoch: int) -> None:
        gap = epoch - self._epoch
        if gap <= 0:
            return
        n = len(self._counts)
        if gap >= n:
            self._counts = [0] * n
            self._total = 0
        else:
            for step in range(1, gap + 1):
                slot = (self._epoch + step) % n
                self._total -= self._counts[slot]
                self._counts[slot] = 0
        self._epoch = epoch

    def add(self, n: int = 1) -> None:
        """Count `n` events now."""
        epoch = self._epoch_now()
        if epoch != self._epoch:
            self._roll(epoch)
        self._counts[self._epoch % len(self._counts)] += n
        self._total += n

    def total(self) -> int:
        """The events counted within the window."""
        self._roll(self._epoch_now())
        return self._total

    def clear(self) -> None:
        """Forget every count."""
        self._counts = [0] * len(self._counts)
        self._total = 0
