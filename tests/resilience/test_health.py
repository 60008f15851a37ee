"""HealthTracker thresholds and HealthChecker's probing loop, on a fake clock."""

from __future__ import annotations

import asyncio
import random
from collections.abc import Awaitable, Callable

import pytest

from bastion.resilience.clock import FakeClock
from bastion.resilience.health import HealthChange, HealthChecker, HealthTracker


async def ok_probe() -> None:
    return None


async def hanging_probe() -> None:
    await asyncio.Event().wait()


def scripted(*results: bool) -> tuple[list[int], Callable[[], Awaitable[None]]]:
    """A probe that fails or succeeds as scripted, then keeps the last result."""
    calls: list[int] = []

    async def probe() -> None:
        calls.append(1)
        if not results[min(len(calls), len(results)) - 1]:
            raise ConnectionRefusedError("refused")

    return calls, probe


async def until(condition: Callable[[], bool], turns: int = 1000) -> None:
    for _ in range(turns):
        if condition():
            return
        await asyncio.sleep(0)
    raise AssertionError("condition not reached")


def test_tracker_starts_healthy() -> None:
    assert HealthTracker("a").healthy


def test_tracker_turns_unhealthy_after_unhealthy_after_failures() -> None:
    clock = FakeClock(start=5.0)
    tracker = HealthTracker("a", unhealthy_after=2, clock=clock)
    assert tracker.record(False, "refused") is None
    assert tracker.healthy
    assert tracker.record(False, "refused") == HealthChange("a", False, 5.0, "refused")
    assert not tracker.healthy


def test_tracker_turns_healthy_after_healthy_after_successes() -> None:
    tracker = HealthTracker("a", healthy_after=3, unhealthy_after=1, clock=FakeClock())
    tracker.record(False)
    assert tracker.record(True) is None
    assert tracker.record(True) is None
    change = tracker.record(True, "ok")
    assert change is not None and change.healthy
    assert tracker.healthy


def test_tracker_count_resets_on_an_agreeing_result() -> None:
    tracker = HealthTracker("a", unhealthy_after=2, clock=FakeClock())
    tracker.record(False)
    tracker.record(True)
    assert tracker.record(False) is None
    assert tracker.healthy


def test_tracker_rejects_a_zero_threshold() -> None:
    with pytest.raises(ValueError, match="healthy_after"):
        HealthTracker("a", healthy_after=0)


def test_unknown_names_are_healthy() -> None:
    assert HealthChecker(clock=FakeClock()).is_healthy("nobody")


async def test_check_once_records_success_and_failure() -> None:
    changes: list[HealthChange] = []
    checker = HealthChecker(clock=FakeClock(), on_change=changes.append)
    _, probe = scripted(False, False, True, True)
    checker.add("a", probe, interval=5.0, timeout=1.0, unhealthy_after=2, healthy_after=2)
    assert [await checker.check_once("a") for _ in range(4)] == [False, False, True, True]
    assert [(c.healthy, c.reason) for c in changes] == [
        (False, "ConnectionRefusedError: refused"),
        (True, "probe succeeded"),
    ]


async def test_a_hanging_probe_times_out_as_a_failure() -> None:
    clock = FakeClock()
    changes: list[HealthChange] = []
    checker = HealthChecker(clock=clock, on_change=changes.append)
    checker.add("a", hanging_probe, interval=5.0, timeout=2.0, unhealthy_after=1)
    assert await checker.check_once("a") is False
    assert not checker.is_healthy("a")
    assert changes[0].reason == "no answer within 2s"
    assert clock.now() == 2.0


async def test_check_once_of_an_unknown_name_is_a_key_error() -> None:
    with pytest.raises(KeyError, match="nobody"):
        await HealthChecker(clock=FakeClock()).check_once("nobody")


async def test_checker_follows_a_probe_that_fails_then_succeeds() -> None:
    clock = FakeClock()
    changes: list[HealthChange] = []
    checker = HealthChecker(clock=clock, on_change=changes.append, rng=random.Random(3))
    calls, probe = scripted(False, False, True, True)
    checker.add("a", probe, interval=5.0, timeout=1.0)
    await checker.start()
    try:
        await until(lambda: len(changes) == 2)
    finally:
        await checker.stop()
    assert [c.healthy for c in changes] == [False, True]
    assert len(calls) >= 4
    # Each pause is the interval, give or take 10 %.
    assert all(4.5 <= s <= 5.5 for s in clock.sleeps)
    assert checker.is_healthy("a")


async def test_stop_leaves_no_tasks() -> None:
    checker = HealthChecker(clock=FakeClock())
    checker.add("a", ok_probe, interval=1.0, timeout=1.0)
    checker.add("b", hanging_probe, interval=1.0, timeout=60.0)
    before = asyncio.all_tasks()
    await checker.start()
    await asyncio.sleep(0)
    assert len(asyncio.all_tasks()) > len(before)
    await checker.stop()
    assert asyncio.all_tasks() == before


async def test_add_while_running_starts_probing() -> None:
    checker = HealthChecker(clock=FakeClock())
    await checker.start()
    calls, probe = scripted(True)
    checker.add("late", probe, interval=1.0, timeout=1.0)
    try:
        await until(lambda: len(calls) >= 2)
    finally:
        await checker.stop()


async def test_remove_stops_probing_that_member() -> None:
    checker = HealthChecker(clock=FakeClock())
    calls, probe = scripted(False)
    checker.add("a", probe, interval=1.0, timeout=1.0, unhealthy_after=1)
    before = asyncio.all_tasks()
    await checker.start()
    await until(lambda: len(calls) >= 1)
    checker.remove("a")
    await until(lambda: asyncio.all_tasks() == before)
    seen = len(calls)
    for _ in range(10):
        await asyncio.sleep(0)
    assert len(calls) == seen
    assert checker.is_healthy("a")  # no longer watched
    await checker.stop()


async def test_adding_a_name_twice_is_an_error() -> None:
    checker = HealthChecker(clock=FakeClock())
    checker.add("a", ok_probe, interval=1.0, timeout=1.0)
    with pytest.raises(ValueError, match="already"):
        checker.add("a", ok_probe, interval=1.0, timeout=1.0)


async def test_a_failing_hook_does_not_stop_the_checker(caplog: pytest.LogCaptureFixture) -> None:
    def broken(change: HealthChange) -> None:
        raise RuntimeError("bus down")

    checker = HealthChecker(clock=FakeClock(), on_change=broken)
    checker.add("a", hanging_probe, interval=1.0, timeout=1.0, unhealthy_after=1)
    assert await checker.check_once("a") is False
    assert not checker.is_healthy("a")
    assert "on_change hook failed" in caplog.text


def test_snapshot_lists_every_verdict() -> None:
    checker = HealthChecker(clock=FakeClock())
    checker.add("a", ok_probe, interval=1.0, timeout=1.0)
    assert checker.snapshot() == {"a": True}
