"""The supervisor's restart decisions (`workers.policy`): at once after a stable run,
doubling delays for quick exits, and giving up on a crash loop."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from bastion.server.workers.policy import RestartPolicy, RestartTracker

POLICY = RestartPolicy(stable_after=30.0, first_delay=0.5, max_delay=3.0, give_up_after=5)


def test_a_worker_that_ran_long_is_restarted_at_once() -> None:
    assert RestartTracker(POLICY).after_exit(ran_for=3600.0) == 0.0


def test_quick_exits_back_off_then_give_up() -> None:
    tracker = RestartTracker(POLICY)
    delays = [tracker.after_exit(ran_for=1.0) for _ in range(5)]
    assert delays == [0.5, 1.0, 2.0, 3.0, None]


def test_a_stable_run_forgives_earlier_quick_exits() -> None:
    tracker = RestartTracker(POLICY)
    for _ in range(4):
        tracker.after_exit(ran_for=1.0)
    assert tracker.after_exit(ran_for=60.0) == 0.0
    assert tracker.after_exit(ran_for=1.0) == 0.5


@given(st.lists(st.floats(min_value=0.0, max_value=100.0), max_size=40))
def test_every_delay_is_bounded_and_only_a_run_of_quick_exits_gives_up(
    runs: list[float],
) -> None:
    tracker = RestartTracker(POLICY)
    quick_in_a_row = 0
    for ran_for in runs:
        delay = tracker.after_exit(ran_for)
        quick_in_a_row = 0 if ran_for >= POLICY.stable_after else quick_in_a_row + 1
        if quick_in_a_row >= POLICY.give_up_after:
            assert delay is None
            return
        assert delay is not None and 0.0 <= delay <= POLICY.max_delay
