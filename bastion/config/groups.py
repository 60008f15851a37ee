"""Model groups: the names clients ask for, and how each one fails over.

These are the router's types and the config's (`models:` entries, a fallback list's
`{model, retries}`), so they live below both. `Target` and `ModelGroup` are standard
dataclasses: the router builds them per request for ad-hoc fallback lists, where
validation would cost for nothing. Their checks are pydantic metadata on the fields,
applied when a config (or `validate()`) builds them.
"""

from __future__ import annotations

import importlib
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Annotated, Any, Literal

from pydantic import ConfigDict, Field

from bastion.resilience.errors import ErrorKind, Rule
from bastion.resilience.retry import KindPolicy, RetryPolicy
from bastion.resilience.settings import Count, Duration, settings
from bastion.types import ChatRequest, ChatResponse, RuntimeContext

Strategy = Literal["priority", "weighted", "least-latency"]

DegradedHandler = Callable[
    [ChatRequest, RuntimeContext],
    ChatResponse | str | Awaitable[ChatResponse | str],
]
RetryOverrides = Mapping[ErrorKind | str, KindPolicy | Mapping[str, Any]]


@dataclass(frozen=True, slots=True)
class Target:
    """One entry of a fallback list. `retries`, when given, replaces the per-kind retry
    count on this endpoint for the kinds that may be retried at all. In a config the
    entry is `{model: name, retries: n}`."""

    __pydantic_config__ = ConfigDict(extra="forbid")

    endpoint: Annotated[str, Field(alias="model", min_length=1)]
    retries: Annotated[Count | None, Field(ge=0, le=100)] = None


@settings
class Hedge:
    """Start a second attempt on another endpoint if the first token is late.

    The delay is `multiplier` × the primary's observed time-to-first-token (EWMA),
    bounded by [`min_delay`, `max_delay`]; `initial` is used until there is history.
    """

    multiplier: Annotated[float, Field(gt=0, le=100)] = 2.0
    min_delay: Duration = 0.05
    max_delay: Duration = 5.0
    initial: Duration = 1.0


@dataclass(frozen=True, slots=True)
class Degraded:
    """The last level of fallback: a static message or a callable (a cached answer, a
    rule-based reply). Whatever it returns is flagged as degraded."""

    message: str | None = None
    handler: DegradedHandler | None = None

    def __post_init__(self) -> None:
        if (self.message is None) == (self.handler is None):
            raise ValueError("degraded: give exactly one of message or handler")


def import_handler(path: str) -> DegradedHandler:
    """The callable at "package.module:function"; ValueError saying why not."""
    module_name, _, attr = path.partition(":")
    try:
        target: Any = importlib.import_module(module_name)
        for part in attr.split("."):
            target = getattr(target, part)
    except (ImportError, AttributeError) as exc:
        raise ValueError(f"cannot import {path!r}: {exc}") from None
    if not callable(target):
        raise ValueError(f"{path!r} is not callable")
    handler: DegradedHandler = target
    return handler


@dataclass(frozen=True, slots=True)
class ModelGroup:
    """A named set of targets.

    `targets` are one model's deployments, ordered by `strategy`; `fallbacks` name
    other groups or endpoints tried after them, in order (another model). When
    everything failed, `degraded` answers if set. `retry` refines the router's policy
    per kind, or replaces it with a whole `RetryPolicy` (e.g. one with a callable).
    """

    targets: tuple[Target, ...]
    strategy: Strategy = "priority"
    fallbacks: tuple[str, ...] = ()
    degraded: Degraded | None = None
    retry: RetryOverrides | RetryPolicy = field(default_factory=dict)
    rules: tuple[Rule, ...] = ()
    failover_on_content_filter: bool = False
    hedge: Hedge | None = None

    @staticmethod
    def of(*targets: str | Target, **options: Any) -> ModelGroup:
        return ModelGroup(
            targets=tuple(Target(t) if isinstance(t, str) else t for t in targets), **options
        )
