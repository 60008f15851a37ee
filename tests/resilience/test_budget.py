"""RetryBudget: retries bounded by a share of requests over a sliding window."""

from __future__ import annotations

import pytest

from bastion.resilience.budget import RetryBudget
from bastion.resilience.clock import FakeClock


def spend_all(budget: RetryBudget) -> int:
    spent = 0
    while budget.try_spend():
        spent += 1
    return spent


def test_retries_are_bounded_by_the_ratio_of_requests() -> None:
    budget = RetryBudget(ratio=0.2, window=10.0, min_retries=3, clock=FakeClock())
    for _ in range(100):
        budget.record_request()
    assert budget.available() == 20.0
    assert spend_all(budget) == 20
    assert budget.available() == 0.0


def test_a_quiet_endpoint_may_still_retry_up_to_the_floor() -> None:
    budget = RetryBudget(ratio=0.2, window=10.0, min_retries=3, clock=FakeClock())
    budget.record_request()
    assert spend_all(budget) == 3


def test_floor_and_ratio_do_not_add_up() -> None:
    budget = RetryBudget(ratio=0.2, window=10.0, min_retries=3, clock=FakeClock())
    for _ in range(20):
        budget.record_request()
    assert spend_all(budget) == 4


def test_new_requests_earn_new_retries() -> None:
    budget = RetryBudget(ratio=0.5, window=10.0, min_retries=0, clock=FakeClock())
    for _ in range(4):
        budget.record_request()
    assert spend_all(budget) == 2
    budget.record_request()
    budget.record_request()
    assert budget.try_spend()


def test_spent_retries_age_out_as_the_window_slides() -> None:
    clock = FakeClock()
    budget = RetryBudget(ratio=0.2, window=10.0, min_retries=3, clock=clock)
    assert spend_all(budget) == 3
    clock.advance(5.0)
    assert not budget.try_spend()
    clock.advance(5.0)
    assert spend_all(budget) == 3


def test_requests_age_out_as_the_window_slides() -> None:
    clock = FakeClock()
    budget = RetryBudget(ratio=0.2, window=10.0, min_retries=0, clock=clock)
    for _ in range(50):
        budget.record_request()
    clock.advance(6.0)
    for _ in range(50):
        budget.record_request()
    assert budget.available() == 20.0
    clock.advance(5.0)  # the first 50 are older than the window now
    assert budget.available() == 10.0
    clock.advance(60.0)
    assert budget.available() == 0.0


def test_budget_rejects_a_negative_ratio() -> None:
    with pytest.raises(ValueError, match="ratio"):
        RetryBudget(ratio=-0.1, clock=FakeClock())
