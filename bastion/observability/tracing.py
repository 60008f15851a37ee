"""OpenTelemetry traces as one consumer of the events, after the GenAI conventions.

One request becomes one span, `chat {model asked for}`, with one child span per
upstream attempt, `chat {upstream model}`:

    POST /v1/chat/completions        SERVER   (the HTTP layer's, if any)
      chat chat                      INTERNAL gen_ai.request.model=chat, error.type=…
        chat gpt-4o-mini             CLIENT   primary: error.type=unavailable
        chat claude-haiku-4-5        CLIENT   backup: ok, server.address=…
      (events on the request span: bastion.retry, bastion.failover, bastion.stream_seam,
       bastion.hedge.started, bastion.hedge.won, bastion.panic, bastion.degraded)

The request span is INTERNAL because the calls that leave the process are its CLIENT
children; a CLIENT parent would draw the gateway as calling itself on a service map.

Spans are built when `RequestFinished` arrives, with explicit start and end times
taken from the events' durations, so the router keeps no span open and does no
tracing work of its own. Events are handed over synchronously in the task that runs
the request, so the span current there (the HTTP layer's server span) is the parent.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Final

from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.trace import SpanKind, Status, StatusCode
from opentelemetry.util.types import AttributeValue

from bastion.observability.events import (
    AttemptFinished,
    DegradedAnswer,
    Event,
    FailedOver,
    HedgeStarted,
    HedgeWon,
    PanicMode,
    RequestFinished,
    RetryScheduled,
    StreamSeam,
)

OPERATION: Final = "chat"

# Requests whose RequestFinished never comes (a caller that left cancels the request
# mid-attempt) would otherwise be held for ever; past this many, the oldest are dropped.
MAX_PENDING: Final = 10_000

Attributes = dict[str, AttributeValue]


@dataclass(frozen=True, slots=True)
class EndpointInfo:
    """What the events do not carry about an endpoint: who runs it and where."""

    provider: str
    address: str | None = None
    port: int | None = None


@dataclass(slots=True)
class _Pending:
    """One request's events so far, each with its wall-clock time (ns since epoch)."""

    attempts: list[tuple[AttemptFinished, int]] = field(default_factory=list)
    marks: list[tuple[str, Attributes, int]] = field(default_factory=list)


class SpanRecorder:
    """An event hook that turns each finished request into a request span and its
    attempt spans. `endpoints` maps endpoint ids to `EndpointInfo`; `describe` adds
    to it when a reload brings new endpoints."""

    def __init__(
        self,
        tracer: trace.Tracer,
        endpoints: Mapping[str, EndpointInfo] | None = None,
        *,
        max_pending: int = MAX_PENDING,
        time_ns: Callable[[], int] = time.time_ns,
    ) -> None:
        self._tracer = tracer
        self._endpoints: dict[str, EndpointInfo] = dict(endpoints or {})
        self._pending: dict[str, _Pending] = {}
        self._max_pending = max_pending
        self._now = time_ns

    def describe(self, endpoints: Mapping[str, EndpointInfo]) -> None:
        """Learn endpoints. Old entries stay: requests in flight on a router that a
        reload retired may still name endpoints the new config dropped."""
        self._endpoints = {**self._endpoints, **endpoints}

    @property
    def pending(self) -> int:
        """Requests seen but not finished yet."""
        return len(self._pending)

    def __call__(self, event: Event) -> None:
        if isinstance(event, AttemptFinished):
            self._request(event.request_id).attempts.append((event, self._now()))
        elif isinstance(event, RequestFinished):
            pending = self._pending.pop(event.request_id, None)
            self._finish(event, pending if pending is not None else _Pending())
        elif isinstance(event, _MARKED):
            name, attributes = _MARKS[type(event)](event)
            self._request(event.request_id).marks.append((name, attributes, self._now()))

    def _request(self, request_id: str) -> _Pending:
        pending = self._pending.get(request_id)
        if pending is None:
            if len(self._pending) >= self._max_pending:
                del self._pending[next(iter(self._pending))]  # the oldest
            pending = self._pending[request_id] = _Pending()
        return pending

    def _finish(self, event: RequestFinished, pending: _Pending) -> None:
        end = self._now()
        served = self._served(event, pending)
        attributes: Attributes = {
            "gen_ai.operation.name": OPERATION,
            "gen_ai.request.stream": event.stream,
            "bastion.request_id": event.request_id,
            "bastion.attempts": event.attempts,
        }
        if event.model is not None:
            attributes["gen_ai.request.model"] = event.model
        if event.endpoint is not None:
            attributes["bastion.endpoint"] = event.endpoint
        if served is not None:
            attributes["gen_ai.response.model"] = served.model
            attributes.update(_answer_attributes(served))
            info = self._endpoints.get(served.endpoint)
            if info is not None:
                attributes["gen_ai.provider.name"] = info.provider
        if event.endpoint == "degraded":
            attributes["bastion.degraded"] = True
        if not event.ok:
            attributes["error.type"] = event.kind or "unknown"
        name = f"{OPERATION} {event.model}" if event.model else OPERATION
        span = self._tracer.start_span(
            name,
            kind=SpanKind.INTERNAL,
            attributes=attributes,
            start_time=end - _ns(event.duration),
        )
        parent = trace.set_span_in_context(span)
        for attempt, ended in pending.attempts:
            self._attempt(attempt, ended, event.stream, parent)
        for mark, mark_attributes, at in pending.marks:
            span.add_event(mark, mark_attributes, timestamp=at)
        if not event.ok:
            span.set_status(Status(StatusCode.ERROR, event.kind))
        span.end(end_time=end)

    def _attempt(self, event: AttemptFinished, end: int, stream: bool, parent: Context) -> None:
        attributes: Attributes = {
            "gen_ai.operation.name": OPERATION,
            "gen_ai.request.model": event.model,
            "gen_ai.request.stream": stream,
            "bastion.endpoint": event.endpoint,
        }
        info = self._endpoints.get(event.endpoint)
        if info is not None:
            attributes["gen_ai.provider.name"] = info.provider
            if info.address is not None:
                attributes["server.address"] = info.address
                if info.port is not None:
                    attributes["server.port"] = info.port
        if event.ttft is not None:
            attributes["gen_ai.response.time_to_first_chunk"] = event.ttft
        attributes.update(_answer_attributes(event))
        if event.hedge:
            attributes["bastion.hedge"] = True
        if event.status is not None:
            attributes["http.response.status_code"] = event.status
        if event.kind is not None:
            attributes["error.type"] = event.kind
        span = self._tracer.start_span(
            f"{OPERATION} {event.model}",
            context=parent,
            kind=SpanKind.CLIENT,
            attributes=attributes,
            start_time=end - _ns(event.duration),
        )
        if event.kind is not None:
            span.set_status(Status(StatusCode.ERROR, event.kind))
        span.end(end_time=end)

    @staticmethod
    def _served(event: RequestFinished, pending: _Pending) -> AttemptFinished | None:
        """The attempt that answered, if an endpoint did."""
        for attempt, _ in reversed(pending.attempts):
            if attempt.ok and attempt.endpoint == event.endpoint:
                return attempt
        return None


def _answer_attributes(event: AttemptFinished) -> Attributes:
    """What the upstream said of its answer: the model that gave it, the tokens spent."""
    attributes: Attributes = {}
    if event.response_model is not None:
        attributes["gen_ai.response.model"] = event.response_model
    if event.input_tokens is not None:
        attributes["gen_ai.usage.input_tokens"] = event.input_tokens
    if event.output_tokens is not None:
        attributes["gen_ai.usage.output_tokens"] = event.output_tokens
    return attributes


def _retry(event: RetryScheduled) -> tuple[str, Attributes]:
    return "bastion.retry", {
        "bastion.endpoint": event.endpoint,
        "error.type": event.kind,
        "bastion.retry": event.retry,
        "bastion.delay": event.delay,
    }


def _failover(event: FailedOver) -> tuple[str, Attributes]:
    attributes: Attributes = {"bastion.endpoint": event.endpoint, "bastion.reason": event.reason}
    if event.kind:  # empty when the move was refused admission before any error
        attributes["error.type"] = event.kind
    return "bastion.failover", attributes


def _seam(event: StreamSeam) -> tuple[str, Attributes]:
    return "bastion.stream_seam", {
        "bastion.from_endpoint": event.from_endpoint,
        "bastion.to_endpoint": event.to_endpoint,
        "bastion.chars_sent": event.chars_sent,
        "bastion.mode": event.mode,
        "bastion.trimmed": event.trimmed,
    }


def _hedge_started(event: HedgeStarted) -> tuple[str, Attributes]:
    return "bastion.hedge.started", {
        "bastion.primary": event.primary,
        "bastion.hedge": event.hedge,
        "bastion.after": event.after,
    }


def _hedge_won(event: HedgeWon) -> tuple[str, Attributes]:
    return "bastion.hedge.won", {"bastion.winner": event.winner, "bastion.loser": event.loser}


def _panic(event: PanicMode) -> tuple[str, Attributes]:
    return "bastion.panic", {"bastion.targets": list(event.targets)}


def _degraded(event: DegradedAnswer) -> tuple[str, Attributes]:
    return "bastion.degraded", {"bastion.group": event.group}


# Events that become span events on their request's span: name and attributes.
_MARKS: Final[dict[type, Callable[[Any], tuple[str, Attributes]]]] = {
    RetryScheduled: _retry,
    FailedOver: _failover,
    StreamSeam: _seam,
    HedgeStarted: _hedge_started,
    HedgeWon: _hedge_won,
    PanicMode: _panic,
    DegradedAnswer: _degraded,
}
_MARKED = (
    RetryScheduled,
    FailedOver,
    StreamSeam,
    HedgeStarted,
    HedgeWon,
    PanicMode,
    DegradedAnswer,
)


def _ns(seconds: float) -> int:
    return max(0, int(seconds * 1e9))
