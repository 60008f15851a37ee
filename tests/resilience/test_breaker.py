"""CircuitBreaker: the state machine on a fake clock."""

from __future__ import annotations

from typing import Any

import pytest

from bastion.resilience.breaker import (
    BreakerConfig,
    BreakerState,
    BreakerTransition,
    CircuitBreaker,
)
from bastion.resilience.clock import FakeClock

CLOSED, OPEN, HALF_OPEN = BreakerState.CLOSED, BreakerState.OPEN, BreakerState.HALF_OPEN


def make(
    **config: Any,
) -> tuple[CircuitBreaker, FakeClock, list[BreakerTransition]]:
    clock = FakeClock()
    events: list[BreakerTransition] = []
    breaker = CircuitBreaker(
        "ep-1",
        BreakerConfig(**config),
        clock=clock,
        on_transition=events.append,
    )
    return breaker, clock, events


def fail(breaker: CircuitBreaker, times: int) -> None:
    for _ in range(times):
        assert breaker.try_acquire()
        breaker.record_failure()


def succeed(breaker: CircuitBreaker, times: int) -> None:
    for _ in range(times):
        assert breaker.try_acquire()
        breaker.record_success()


def test_opens_on_consecutive_failures() -> None:
    breaker, _, _ = make(consecutive_failures=3)
    fail(breaker, 2)
    assert breaker.state is CLOSED
    fail(breaker, 1)
    assert breaker.state is OPEN
    assert not breaker.available()
    assert not breaker.try_acquire()


def test_a_success_resets_the_consecutive_count() -> None:
    breaker, _, _ = make(consecutive_failures=3)
    fail(breaker, 2)
    succeed(breaker, 1)
    fail(breaker, 2)
    assert breaker.state is CLOSED


def test_opens_on_failure_rate_only_once_min_calls_is_reached() -> None:
    breaker, _, events = make(consecutive_failures=100, failure_rate=0.5, min_calls=10)
    for _ in range(4):  # 8 calls, half failed: below min_calls
        fail(breaker, 1)
        succeed(breaker, 1)
    assert breaker.state is CLOSED
    succeed(breaker, 1)
    fail(breaker, 1)  # 10 calls, 5 failed
    assert breaker.state is OPEN
    assert events[-1].reason == "5/10 calls failed in 30s"


def test_failure_rate_below_threshold_stays_closed() -> None:
    breaker, _, _ = make(consecutive_failures=100, failure_rate=0.5, min_calls=10)
    for _ in range(10):
        succeed(breaker, 2)
        fail(breaker, 1)
    assert breaker.state is CLOSED


def test_old_calls_leave_the_failure_rate_window() -> None:
    breaker, clock, _ = make(consecutive_failures=100, failure_rate=0.5, min_calls=10, window=10.0)
    fail(breaker, 9)
    clock.advance(10.0)
    fail(breaker, 1)  # only 1 call within the window now
    assert breaker.state is CLOSED


def test_turns_half_open_after_open_for() -> None:
    breaker, clock, _ = make(consecutive_failures=1, open_for=10.0)
    fail(breaker, 1)
    clock.advance(9.9)
    assert breaker.state is OPEN
    assert breaker.reopens_in() == pytest.approx(0.1)
    clock.advance(0.1)
    assert breaker.state is HALF_OPEN
    assert breaker.reopens_in() == 0.0


def test_probes_are_limited_in_half_open() -> None:
    breaker, clock, _ = make(consecutive_failures=1, half_open_probes=2)
    fail(breaker, 1)
    clock.advance(10.0)
    assert breaker.try_acquire()
    assert breaker.try_acquire()
    assert not breaker.available()
    assert not breaker.try_acquire()


def test_available_reserves_nothing() -> None:
    breaker, clock, _ = make(consecutive_failures=1, half_open_probes=1)
    fail(breaker, 1)
    clock.advance(10.0)
    assert breaker.available()
    assert breaker.available()
    assert breaker.try_acquire()
    assert not breaker.available()


def test_closes_after_n_probe_successes() -> None:
    breaker, clock, _ = make(consecutive_failures=1, half_open_probes=2)
    fail(breaker, 1)
    clock.advance(10.0)
    succeed(breaker, 1)
    assert breaker.state is HALF_OPEN
    succeed(breaker, 1)
    assert breaker.state is CLOSED


def test_a_failed_probe_reopens() -> None:
    breaker, clock, _ = make(consecutive_failures=1)
    fail(breaker, 1)
    clock.advance(10.0)
    succeed(breaker, 1)
    fail(breaker, 1)
    assert breaker.state is OPEN


def test_reopens_with_longer_open_time_and_resets_after_close() -> None:
    breaker, clock, events = make(
        consecutive_failures=1, open_for=10.0, backoff=2.0, open_for_max=35.0, half_open_probes=1
    )
    fail(breaker, 1)
    opens = [10.0]
    for _ in range(3):
        clock.advance(breaker.reopens_in())
        fail(breaker, 1)  # the probe fails
        opens.append(breaker.snapshot().open_for)
    assert opens == [10.0, 20.0, 35.0, 35.0]
    assert [e.open_for for e in events if e.new is OPEN] == opens
    clock.advance(35.0)
    succeed(breaker, 1)
    assert breaker.state is CLOSED
    fail(breaker, 1)
    assert breaker.reopens_in() == 10.0


def test_release_frees_a_probe_slot() -> None:
    breaker, clock, _ = make(consecutive_failures=1, half_open_probes=1)
    fail(breaker, 1)
    clock.advance(10.0)
    assert breaker.try_acquire()
    assert not breaker.try_acquire()
    breaker.release()
    assert breaker.state is HALF_OPEN
    assert breaker.try_acquire()


def test_release_counts_nothing() -> None:
    breaker, _, _ = make(consecutive_failures=2)
    fail(breaker, 1)
    assert breaker.try_acquire()
    breaker.release()
    snapshot = breaker.snapshot()
    assert (snapshot.consecutive_failures, snapshot.window_calls) == (1, 1)


def test_results_arriving_while_open_change_nothing() -> None:
    breaker, clock, _ = make(consecutive_failures=1, open_for=10.0)
    fail(breaker, 1)
    clock.advance(5.0)
    breaker.record_failure()
    breaker.record_success()
    assert breaker.state is OPEN
    assert breaker.reopens_in() == 5.0


def test_transitions_are_emitted() -> None:
    breaker, clock, events = make(consecutive_failures=2, open_for=10.0, half_open_probes=1)
    fail(breaker, 2)
    clock.advance(10.0)
    assert breaker.state is HALF_OPEN
    succeed(breaker, 1)
    assert events == [
        BreakerTransition("ep-1", CLOSED, OPEN, 0.0, "2 consecutive failures", 10.0),
        BreakerTransition("ep-1", OPEN, HALF_OPEN, 10.0, "open for 10s"),
        BreakerTransition("ep-1", HALF_OPEN, CLOSED, 10.0, "1 probe succeeded"),
    ]


def test_a_failing_hook_does_not_break_the_breaker(caplog: pytest.LogCaptureFixture) -> None:
    def broken(event: BreakerTransition) -> None:
        raise RuntimeError("metrics down")

    breaker = CircuitBreaker(
        "ep-1", BreakerConfig(consecutive_failures=1), clock=FakeClock(), on_transition=broken
    )
    fail(breaker, 1)
    assert breaker.state is OPEN
    assert "on_transition hook failed" in caplog.text


def test_snapshot_reports_the_counts() -> None:
    breaker, _, _ = make(consecutive_failures=5)
    succeed(breaker, 2)
    fail(breaker, 3)
    snapshot = breaker.snapshot()
    assert snapshot.state is CLOSED
    assert (snapshot.consecutive_failures, snapshot.window_calls, snapshot.window_failures) == (
        3,
        5,
        3,
    )
    assert (snapshot.times_opened, snapshot.open_for, snapshot.reopens_in) == (0, 5.0, 0.0)


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("consecutive_failures", 0),
        ("failure_rate", 1.5),
        ("window", 0.0),
        ("min_calls", 0),
        ("open_for", -1.0),
        ("open_for_max", 1.0),
        ("backoff", 0.5),
        ("half_open_probes", 0),
    ],
)
def test_config_validation_names_the_field(field: str, value: float) -> None:
    with pytest.raises(ValueError, match=field):
        BreakerConfig(**{field: value})  # type: ignore[arg-type]


def test_a_long_open_for_raises_the_default_cap_with_it() -> None:
    assert BreakerConfig(open_for=60.0).longest_open == 60.0
    assert BreakerConfig().longest_open == 30.0
    with pytest.raises(ValueError, match="open_for_max must be at least open_for"):
        BreakerConfig(open_for=60.0, open_for_max=30.0)
