"""Router-wide settings, each a typed, frozen object with bounded defaults.

The router's own defaults: the config's top-level `deadline:` and `health_checks:`
default to these.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from bastion.config.groups import RetryOverrides
from bastion.resilience.breaker import BreakerConfig
from bastion.resilience.budget import BudgetConfig
from bastion.resilience.errors import Rule
from bastion.resilience.outlier import OutlierConfig
from bastion.resilience.retry import RetryPolicy


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
