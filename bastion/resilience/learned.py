"""Time limits learned from what an endpoint has shown, instead of one fixed number.

`FirstTokenLimit` keeps an endpoint's recent times to first response and turns them
into the limit a new call waits for it (`AdaptiveFirstToken`, the `first_token:`
section of the config).
"""

from __future__ import annotations

from collections import deque
from typing import Annotated

from pydantic import Field

from bastion.resilience.settings import Count, PositiveDuration, settings


@settings
class AdaptiveFirstToken:
    """How long a call may wait for its first token (or first response byte) where the
    endpoint sets no `timeouts.first_token` of its own:

        clamp(quantile(recent TTFTs, q) × factor, floor, ceiling)

    over the last `window` times to first token, and `initial` until `min_samples` are
    in. A fast model then leaves a silent upstream within seconds, and a reasoning model
    is given the minutes it needs. A first-token timeout counts as a sample of its
    limit, so an endpoint that is slower than its limit raises it by `factor` each time
    instead of timing out forever.
    """

    quantile: Annotated[float, Field(gt=0, le=1)] = 0.95
    factor: Annotated[float, Field(ge=1, le=100)] = 3.0
    floor: PositiveDuration = 1.0
    ceiling: PositiveDuration = 120.0
    initial: PositiveDuration = 30.0
    min_samples: Annotated[Count, Field(ge=1, le=10_000)] = 10
    window: Annotated[Count, Field(ge=1, le=10_000)] = 100

    def __post_init__(self) -> None:
        if self.ceiling < self.floor:
            raise ValueError(f"ceiling must be at least floor ({self.floor:g}s)")
        if self.window < self.min_samples:
            raise ValueError(f"window must be at least min_samples ({self.min_samples})")


class FirstTokenLimit:
    """The learned first-token limit of one endpoint (see `AdaptiveFirstToken`).

    Recomputed every few samples rather than on every read: sorting the window is
    cheap, but the limit is read on every stream."""

    __slots__ = ("_config", "_limit", "_samples", "_stale")

    # Samples between recomputations of the quantile.
    _EVERY = 8

    def __init__(self, config: AdaptiveFirstToken) -> None:
        self._config = config
        self._samples: deque[float] = deque(maxlen=config.window)
        self._limit = config.initial
        self._stale = 0

    @property
    def value(self) -> float:
        return self._limit

    def add(self, seconds: float) -> None:
        self._samples.append(seconds)
        self._stale += 1
        count = len(self._samples)
        if count < self._config.min_samples:
            return
        if self._stale >= self._EVERY or count == self._config.min_samples:
            self._stale = 0
            self._limit = self._compute()

    def _compute(self) -> float:
        cfg = self._config
        ordered = sorted(self._samples)
        index = min(len(ordered) - 1, int(cfg.quantile * len(ordered)))
        return min(max(ordered[index] * cfg.factor, cfg.floor), cfg.ceiling)
