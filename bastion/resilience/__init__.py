"""Resilience policies for any async call: classification, retry, retry budget, circuit
breaker, outlier ejection and health checks.

Each policy is a small state machine over an injected `Clock` that returns decisions;
the router carries them out. Nothing here knows about LLMs beyond the error wording
that `errors.classify()` reads.
"""

from bastion.resilience.breaker import (
    DEFAULT_BREAKER_CONFIG,
    BreakerConfig,
    BreakerSnapshot,
    BreakerState,
    BreakerTransition,
    CircuitBreaker,
)
from bastion.resilience.budget import BudgetConfig, RetryBudget
from bastion.resilience.clock import Clock, FakeClock, SlidingCounter, SystemClock, wait_for
from bastion.resilience.errors import (
    ENDPOINT_FAULTS,
    BastionError,
    Classification,
    ClassificationRule,
    ErrorKind,
    Rule,
    StreamBroken,
    UpstreamError,
    UpstreamTimeout,
    classify,
    kind_of_message,
    kind_of_response,
    parse_retry_after,
)
from bastion.resilience.health import HealthChange, HealthChecker, HealthTracker, Probe
from bastion.resilience.outlier import (
    DEFAULT_OUTLIER_CONFIG,
    Ejected,
    OutlierConfig,
    OutlierDetector,
    Restored,
)
from bastion.resilience.retry import (
    DEFAULT_KIND_POLICIES,
    Action,
    Decision,
    FailureInfo,
    KindPolicy,
    RetryPolicy,
    full_jitter,
)
from bastion.resilience.settings import Duration, PositiveDuration, settings

__all__ = [
    "DEFAULT_BREAKER_CONFIG",
    "DEFAULT_KIND_POLICIES",
    "DEFAULT_OUTLIER_CONFIG",
    "ENDPOINT_FAULTS",
    "Action",
    "BastionError",
    "BreakerConfig",
    "BreakerSnapshot",
    "BreakerState",
    "BreakerTransition",
    "BudgetConfig",
    "CircuitBreaker",
    "Classification",
    "ClassificationRule",
    "Clock",
    "Decision",
    "Duration",
    "Ejected",
    "ErrorKind",
    "FailureInfo",
    "FakeClock",
    "HealthChange",
    "HealthChecker",
    "HealthTracker",
    "KindPolicy",
    "OutlierConfig",
    "OutlierDetector",
    "PositiveDuration",
    "Probe",
    "Restored",
    "RetryBudget",
    "RetryPolicy",
    "Rule",
    "SlidingCounter",
    "StreamBroken",
    "SystemClock",
    "UpstreamError",
    "UpstreamTimeout",
    "classify",
    "full_jitter",
    "kind_of_message",
    "kind_of_response",
    "parse_retry_after",
    "settings",
    "wait_for",
]
