"""Typed events: everything the router does that an operator may want to know.

Events are frozen data handed to hooks. Logs, metrics, traces and the dashboard are
consumers of the same events; none of them is special. A hook that raises is
isolated: the request it observes goes on.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass

from bastion.resilience.breaker import BreakerTransition
from bastion.resilience.health import HealthChange
from bastion.resilience.outlier import Ejected, Restored

_log = logging.getLogger("bastion.events")


@dataclass(frozen=True, slots=True)
class AttemptFinished:
    """One attempt on one endpoint ended. `kind` is None on success. On success the
    token counts and the model the upstream says answered are given when it said so."""

    request_id: str
    endpoint: str
    model: str
    kind: str | None
    status: int | None
    duration: float
    ttft: float | None = None
    hedge: bool = False
    input_tokens: int | None = None
    output_tokens: int | None = None
    response_model: str | None = None

    @property
    def ok(self) -> bool:
        return self.kind is None


@dataclass(frozen=True, slots=True)
class RetryScheduled:
    request_id: str
    endpoint: str
    kind: str
    retry: int
    delay: float


@dataclass(frozen=True, slots=True)
class FailedOver:
    """The request left `endpoint` for the next target because of `kind`."""

    request_id: str
    endpoint: str
    kind: str
    reason: str


@dataclass(frozen=True, slots=True)
class StreamSeam:
    """A stream broke after `chars_sent` characters and went on at `to_endpoint`."""

    request_id: str
    from_endpoint: str
    to_endpoint: str
    chars_sent: int
    mode: str  # "prefill" or "instruct"
    trimmed: int = 0


@dataclass(frozen=True, slots=True)
class HedgeStarted:
    request_id: str
    primary: str
    hedge: str
    after: float


@dataclass(frozen=True, slots=True)
class HedgeWon:
    request_id: str
    winner: str
    loser: str


@dataclass(frozen=True, slots=True)
class PanicMode:
    """Every target of a plan was out (breaker, ejection, health): tried anyway."""

    request_id: str
    targets: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class DegradedAnswer:
    request_id: str
    group: str


@dataclass(frozen=True, slots=True)
class RequestFinished:
    """A request ended. `model` is what the caller asked for (a group, an endpoint id,
    or an ad-hoc list joined with "+"); `endpoint` is what answered, if anything."""

    request_id: str
    endpoint: str | None
    ok: bool
    attempts: int
    duration: float
    stream: bool
    kind: str | None = None
    model: str | None = None


@dataclass(frozen=True, slots=True)
class EndpointIsolated:
    endpoint: str
    isolated: bool  # False: recovered


Event = (
    AttemptFinished
    | RetryScheduled
    | FailedOver
    | StreamSeam
    | HedgeStarted
    | HedgeWon
    | PanicMode
    | DegradedAnswer
    | RequestFinished
    | EndpointIsolated
    | BreakerTransition
    | Ejected
    | Restored
    | HealthChange
)
EventHook = Callable[[Event], None]


class EventBus:
    """Hands each event to every hook, in order; a failing hook is logged and skipped."""

    __slots__ = ("_hooks",)

    def __init__(self, hooks: tuple[EventHook, ...] = ()) -> None:
        self._hooks: tuple[EventHook, ...] = tuple(hooks)

    def subscribe(self, hook: EventHook) -> Callable[[], None]:
        """Add a hook; returns a function that removes it."""
        self._hooks = (*self._hooks, hook)

        def unsubscribe() -> None:
            self._hooks = tuple(h for h in self._hooks if h is not hook)

        return unsubscribe

    @property
    def active(self) -> bool:
        return bool(self._hooks)

    def emit(self, event: Event) -> None:
        for hook in self._hooks:
            try:
                hook(event)
            except Exception:
                _log.exception("event hook %r failed on %s", hook, type(event).__name__)
