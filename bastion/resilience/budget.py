"""A retry budget: retries may add only a bounded share of load to an endpoint.

Per-request retry limits do not stop a retry storm: when an endpoint fails every
request, each of them retries, and the endpoint sees several times its normal load
just when it can least take it. A budget bounds the retries of all requests together.
"""

from __future__ import annotations

from typing import Annotated

from pydantic import Field

from bastion.resilience.clock import Clock, SlidingCounter, SystemClock
from bastion.resilience.settings import Count, PositiveDuration, settings


@settings
class BudgetConfig:
    """Retries may add at most `ratio` × requests per endpoint over `window` seconds,
    with a floor of `min_retries` per window so a quiet endpoint can still retry (the
    `budget:` section of the config)."""

    ratio: Annotated[float, Field(ge=0, le=100)] = 0.2
    window: PositiveDuration = 10.0
    min_retries: Annotated[Count, Field(ge=0, le=1_000_000)] = 3


_DEFAULT = BudgetConfig()


class RetryBudget:
    """Retries allowed over a sliding `window` of seconds:

        allowed = max(min_retries, ratio * requests)

    where `requests` counts `record_request()` calls in the window. The floor lets a
    quiet endpoint still retry. Call `record_request()` once per request, not per
    attempt, so that retries do not earn more retries. One budget per endpoint.
    """

    def __init__(
        self,
        ratio: float = _DEFAULT.ratio,
        window: float = _DEFAULT.window,
        min_retries: int = _DEFAULT.min_retries,
        *,
        clock: Clock | None = None,
        buckets: int = 10,
    ) -> None:
        BudgetConfig(ratio=ratio, window=window, min_retries=min_retries)  # the checks
        clock = clock if clock is not None else SystemClock()
        self.ratio = ratio
        self.window = window
        self.min_retries = min_retries
        self._requests = SlidingCounter(window, clock, buckets=buckets)
        self._retries = SlidingCounter(window, clock, buckets=buckets)

    def record_request(self) -> None:
        """Count one request (its first attempt) against this endpoint."""
        self._requests.add()

    def available(self) -> float:
        """Retries that may still be spent now (fractional: the ratio earns in parts)."""
        allowed = max(float(self.min_retries), self.ratio * self._requests.total())
        return max(0.0, allowed - self._retries.total())

    def try_spend(self) -> bool:
        """Spend one retry if the budget allows it; False means fail over instead."""
        if self.available() < 1.0:
            return False
        self._retries.add()
        return True
