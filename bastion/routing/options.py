"""Router-wide settings, each a typed, frozen object with bounded defaults."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from bastion.resilience.breaker import BreakerConfig
from bastion.resilience.errors import Rule
from bastion.resilience.outlier import OutlierConfig
from bastion.resilience.retry import RetryPolicy
from bastion.routing.endpoints import AdaptiveFirstToken
from bastion.routing.groups import RetryOverrides


@dataclass(frozen=True, slots=True)
class BudgetConfig:
    """Retries may add at most `ratio` × requests per endpoint over `window` seconds,
    with a floor of `min_retries` per window so a quiet endpoint can still retry."""

    ratio: float = 0.2
    window: float = 10.0
    min_retries: int = 3


@dataclass(frozen=True, slots=True)
class EndpointPolicy:
    """Overrides for one endpoint, on top of its group's and the router's."""

    retry: RetryOverrides | RetryPolicy = field(default_factory=dict)
    rules: tuple[Rule, ...] = ()
    breaker: BreakerConfig | None = None


@dataclass(frozen=True, slots=True)
class RouterOptions:
    retry: RetryPolicy = field(default_factory=RetryPolicy)
    breaker: BreakerConfig = field(default_factory=BreakerConfig)
    outlier: OutlierConfig = field(default_factory=OutlierConfig)
    budget: BudgetConfig = field(default_factory=BudgetConfig)
    # One deadline bounds every attempt, backoff and failover of a request together.
    deadline: float = 120.0
    rules: tuple[Rule, ...] = ()
    endpoints: Mapping[str, EndpointPolicy] = field(default_factory=dict)
    health_checks: bool = True
    # A retryable failure (a 500, a 503, a 429) fails over at once while another target
    # is in service, instead of sleeping through a backoff on the same target; with no
    # other target, it is retried there. A fallback entry's own `retries` still holds.
    failover_first: bool = True
    # The first-token limit of endpoints that set none of their own.
    first_token: AdaptiveFirstToken = field(default_factory=AdaptiveFirstToken)
