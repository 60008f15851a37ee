"""FakeClock, wait_for on an injected clock, and SlidingCounter."""

from __future__ import annotations

import asyncio

import pytest

from bastion.resilience.clock import FakeClock, SlidingCounter, SystemClock, wait_for


async def test_fake_clock_sleep_advances_time_and_records_it() -> None:
    clock = FakeClock(start=100.0)
    await clock.sleep(2.5)
    await clock.sleep(-1.0)
    assert clock.now() == 102.5
    assert clock.sleeps == [2.5, 0.0]


def test_fake_clock_cannot_go_back() -> None:
    with pytest.raises(ValueError, match="back"):
        FakeClock().advance(-1.0)


async def test_system_clock_is_monotonic() -> None:
    clock = SystemClock()
    first = clock.now()
    await clock.sleep(0)
    assert clock.now() >= first


async def test_wait_for_returns_an_instant_answer_without_spending_time() -> None:
    clock = FakeClock()

    async def answer() -> int:
        return 42

    assert await wait_for(clock, answer(), 5.0) == 42
    assert clock.now() == 0.0


async def test_wait_for_raises_the_awaitables_error() -> None:
    async def fail() -> None:
        raise ConnectionResetError("reset")

    with pytest.raises(ConnectionResetError):
        await wait_for(FakeClock(), fail(), 5.0)


async def test_wait_for_times_out_a_hang_and_cancels_it() -> None:
    clock = FakeClock()
    cancelled = asyncio.Event()

    async def hang() -> None:
        try:
            await asyncio.Event().wait()
        finally:
            cancelled.set()

    with pytest.raises(TimeoutError):
        await wait_for(clock, hang(), 5.0)
    assert cancelled.is_set()
    assert clock.now() == 5.0


async def test_wait_for_cancelled_by_its_caller_cancels_the_awaitable() -> None:
    cancelled = asyncio.Event()
    started = asyncio.Event()

    async def hang() -> None:
        started.set()
        try:
            await asyncio.Event().wait()
        finally:
            cancelled.set()

    task = asyncio.create_task(wait_for(SystemClock(), hang(), 60.0))
    await started.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert cancelled.is_set()


def test_sliding_counter_forgets_whole_buckets_as_time_passes() -> None:
    clock = FakeClock()
    counter = SlidingCounter(10.0, clock, buckets=10)
    counter.add(3)
    clock.advance(4.0)
    counter.add(2)
    assert counter.total() == 5
    clock.advance(6.0)
    assert counter.total() == 2
    clock.advance(4.0)
    assert counter.total() == 0


def test_sliding_counter_survives_a_long_silence() -> None:
    clock = FakeClock()
    counter = SlidingCounter(1.0, clock)
    counter.add()
    clock.advance(1e6)
    counter.add()
    assert counter.total() == 1
