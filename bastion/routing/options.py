"""Router-wide settings, each a typed, frozen object with bounded defaults.

The scalar defaults are the config's (`deadline:`, `health_checks:`,
`failover_first:`), read from its schema so that they are written once; the sections
(`breaker:`, `outlier:`, `budget:`) are the same types in both.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from bastion.config.groups import RetryOverrides
from bastion.config.schema import BastionConfig
from bastion.resilience.breaker import BreakerConfig
from bastion.resilience.budget import BudgetConfig
from bastion.resilience.errors import Rule
from bastion.resilience.learned import AdaptiveFirstToken
from bastion.resilience.outlier import OutlierConfig
from bastion.resilience.retry import RetryPolicy

__all__ = ["BudgetConfig", "EndpointPolicy", "RouterOptions"]


def _config_default(name: str) -> Any:
    return BastionConfig.model_fields[name].default


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
    deadline: float = _config_default("deadline")
    rules: tuple[Rule, ...] = ()
    endpoints: Mapping[str, EndpointPolicy] = field(default_factory=dict)
    health_checks: bool = _config_default("health_checks")
    # A retryable failure (a 500, a 503, a 429) fails over at once while another target
    # is in service, instead of sleeping through a backoff on the same target; with no
    # other target, it is retried there. A fallback entry's own `retries` still holds.
    failover_first: bool = _config_default("failover_first")
    # The first-token limit of endpoints that set none of their own (`first_token:`).
    first_token: AdaptiveFirstToken = field(default_factory=AdaptiveFirstToken)
