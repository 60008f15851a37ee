"""Prometheus metrics: a consumer of the router's events plus a few request observers.

    metrics = Metrics(known_model=...)  # its own CollectorRegistry, never the global one
    fanout.subscribe(metrics)           # counters and histograms from the events
    metrics.observe_request("chat", "ok", False, 1.2, 0.0004)
    body = metrics.render(router.status())   # text format; gauges read at scrape time

Each instance owns its registry, so several gateways (and the tests) in one process
do not collide. The per-event path is a dict lookup of the event type, a dict lookup
of the label tuple and an `inc()`/`observe()` on a child bound once: it runs for every
attempt of every request.

Gauges that describe an endpoint's state (breaker, health, load) are not kept from
events: a breaker moves from open to half-open lazily, without an event, and a reload
may drop endpoints. They are read from the router's status at each scrape instead.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Any, Protocol

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from prometheus_client.metrics_core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from bastion.observability.events import (
    AttemptFinished,
    DegradedAnswer,
    Event,
    FailedOver,
    HedgeStarted,
    HedgeWon,
    PanicMode,
    RetryScheduled,
    StreamSeam,
)
from bastion.observability.families import CounterFamily, FamilyCollector, HistogramFamily
from bastion.resilience.breaker import BreakerState, BreakerTransition
from bastion.resilience.outlier import Ejected

# Model names come from clients; a client inventing names must not grow the page. Names
# the live config does not know (`known_model`) share this label; without a config to
# ask, past MAX_MODEL_LABELS distinct names the rest do.
MAX_MODEL_LABELS = 256
OTHER_MODEL = "_other"
# What `render()` returns, for the Content-Type header of the metrics page.
CONTENT_TYPE = CONTENT_TYPE_LATEST

# Whole requests and attempts: LLM calls run from tens of milliseconds to minutes.
_LATENCY_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1, 2, 4, 8, 15, 30, 60, 120, 300)
_TTFT_BUCKETS = (0.025, 0.05, 0.1, 0.25, 0.5, 0.75, 1, 1.5, 2, 3, 5, 10, 30)
# Bastion's own time per request is meant to be well under a millisecond.
_OVERHEAD_BUCKETS = (
    0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1,
)  # fmt: skip
_INTER_TOKEN_BUCKETS = (0.001, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10)

_BREAKER_VALUE = {BreakerState.CLOSED: 0.0, BreakerState.HALF_OPEN: 1.0, BreakerState.OPEN: 2.0}


class EndpointGauges(Protocol):
    """What the scrape-time gauges read of one endpoint (`routing.EndpointStatus`)."""

    @property
    def id(self) -> str: ...
    @property
    def breaker(self) -> BreakerState: ...
    @property
    def healthy(self) -> bool: ...
    @property
    def in_flight(self) -> int: ...
    @property
    def in_service(self) -> bool: ...


class _EndpointCollector(Collector):
    """Gauges built afresh from the snapshot handed to `Metrics.render`, so an endpoint
    removed by a reload disappears from the page instead of keeping a stale value."""

    def __init__(self) -> None:
        self.snapshot: Sequence[EndpointGauges] = ()

    def collect(self) -> Iterator[Metric]:
        breaker = GaugeMetricFamily(
            "bastion_breaker_state",
            "Circuit breaker state per endpoint: 0 closed, 1 half-open, 2 open.",
            labels=["endpoint"],
        )
        healthy = GaugeMetricFamily(
            "bastion_endpoint_healthy",
            "1 if the endpoint's active health checks pass (or are off).",
            labels=["endpoint"],
        )
        in_flight = GaugeMetricFamily(
            "bastion_endpoint_in_flight", "Attempts running on the endpoint.", labels=["endpoint"]
        )
        in_service = GaugeMetricFamily(
            "bastion_endpoint_in_service",
            "1 if the endpoint takes traffic: not isolated, ejected, unhealthy or open.",
            labels=["endpoint"],
        )
        for status in self.snapshot:
            labels = [status.id]
            breaker.add_metric(labels, _BREAKER_VALUE[status.breaker])
            healthy.add_metric(labels, 1.0 if status.healthy else 0.0)
            in_flight.add_metric(labels, float(status.in_flight))
            in_service.add_metric(labels, 1.0 if status.in_service else 0.0)
        yield from (breaker, healthy, in_flight, in_service)

    def describe(self) -> Iterable[Metric]:
        # Names only, for the registry's duplicate check at registration.
        saved, self.snapshot = self.snapshot, ()
        try:
            return list(self.collect())
        finally:
            self.snapshot = saved


class Metrics:
    """The gateway's Prometheus metrics. Call it with events; see the module docstring.

    `known_model` says whether the live config names a model (a group, an endpoint, an
    agent): it is asked at each observation, so a reload changes the set at once. Only
    such names get a label of their own; each costs ~17 series."""

    def __init__(self, known_model: Callable[[str], bool] | None = None) -> None:
        self._known_model = known_model
        families: list[CounterFamily | HistogramFamily] = []

        def counter(name: str, documentation: str, labels: Sequence[str] = ()) -> CounterFamily:
            family = CounterFamily(name, documentation, labels)
            families.append(family)
            return family

        def histogram(
            name: str, documentation: str, labels: Sequence[str], bounds: Sequence[float]
        ) -> HistogramFamily:
            family = HistogramFamily(name, documentation, labels, bounds)
            families.append(family)
            return family

        self._requests = counter(
            "bastion_requests_total",
            "Client requests by model asked for, outcome (ok, error) and streaming.",
            ["model", "outcome", "stream"],
        ).child
        self._attempts = counter(
            "bastion_attempts_total",
            "Upstream attempts by endpoint and outcome (ok, or the error kind).",
            ["endpoint", "outcome"],
        ).child
        self._tokens = counter(
            "bastion_tokens_total",
            "Tokens the upstreams reported per endpoint, by type (input, output).",
            ["endpoint", "type"],
        ).child
        self._retries = counter(
            "bastion_retries_total",
            "Retries scheduled on the same endpoint, by error kind.",
            ["endpoint", "kind"],
        ).child
        self._failovers = counter(
            "bastion_failovers_total",
            "Requests that left an endpoint for the next target, by error kind.",
            ["endpoint", "kind"],
        ).child
        self._seams = counter(
            "bastion_stream_seams_total",
            "Streams continued on another endpoint after tokens were sent.",
            ["from_endpoint", "to_endpoint", "mode"],
        ).child
        self._hedges = counter(
            "bastion_hedges_total",
            "Hedged attempts started, and hedges that answered first.",
            ["outcome"],
        ).child
        self._ejections = counter(
            "bastion_ejections_total",
            "Outlier ejections per endpoint.",
            ["endpoint"],
        ).child
        self._degraded = counter(
            "bastion_degraded_total",
            "Degraded answers given per model group.",
            ["group"],
        ).child
        self._transitions = counter(
            "bastion_breaker_transitions_total",
            "Circuit breaker state changes per endpoint, by the state entered.",
            ["endpoint", "state"],
        ).child
        self._panics = counter(
            "bastion_panic_total",
            "Requests whose every target was out of service and were tried anyway.",
        ).child()
        self._events_dropped = counter(
            "bastion_events_dropped_total",
            "Events dropped because an event-stream client read too slowly.",
        ).child()
        self._request_duration = histogram(
            "bastion_request_duration_seconds",
            "Client request wall time, failovers and backoff included.",
            ["model", "stream"],
            _LATENCY_BUCKETS,
        ).child
        self._first_token = histogram(
            "bastion_request_time_to_first_token_seconds",
            "Time from a streaming request's arrival to its first token, as the "
            "client sees it (failovers before the first token included).",
            ["model"],
            _TTFT_BUCKETS,
        ).child
        self._attempt_duration = histogram(
            "bastion_attempt_duration_seconds",
            "Upstream attempt wall time per endpoint.",
            ["endpoint"],
            _LATENCY_BUCKETS,
        ).child
        self._ttft = histogram(
            "bastion_time_to_first_token_seconds",
            "Upstream time to first token per endpoint (successful attempts).",
            ["endpoint"],
            _TTFT_BUCKETS,
        ).child
        self._inter_token = histogram(
            "bastion_inter_token_seconds",
            "Gaps between consecutive stream chunks relayed to the client.",
            ["endpoint"],
            _INTER_TOKEN_BUCKETS,
        ).child
        self._overhead = histogram(
            "bastion_overhead_seconds",
            "Bastion's own time per request: wall time less upstream time and backoff.",
            (),
            _OVERHEAD_BUCKETS,
        ).child()
        self.registry = CollectorRegistry()
        self.registry.register(FamilyCollector(families))
        self._endpoints = _EndpointCollector()
        self.registry.register(self._endpoints)
        self._models: set[str] = set()
        self._on: dict[type, Callable[[Any], None]] = {
            AttemptFinished: self._attempt,
            RetryScheduled: self._retry,
            FailedOver: self._failover,
            StreamSeam: self._seam,
            HedgeStarted: self._hedge_started,
            HedgeWon: self._hedge_won,
            Ejected: self._ejected,
            DegradedAnswer: self._degraded_answer,
            PanicMode: self._panic,
            BreakerTransition: self._transition,
        }

    # --- the event consumer ------------------------------------------------------------

    def __call__(self, event: Event) -> None:
        """Count one event. Events with nothing to count (RequestFinished is counted at
        the HTTP edge, isolation and health are scrape-time gauges) are ignored."""
        handler = self._on.get(type(event))
        if handler is not None:
            handler(event)

    def _attempt(self, event: AttemptFinished) -> None:
        endpoint = event.endpoint
        self._attempts(endpoint, event.kind or "ok").inc()
        self._attempt_duration(endpoint).observe(event.duration)
        if event.ttft is not None:
            self._ttft(endpoint).observe(event.ttft)
        if event.input_tokens is not None:
            self._tokens(endpoint, "input").inc(event.input_tokens)
        if event.output_tokens is not None:
            self._tokens(endpoint, "output").inc(event.output_tokens)

    def _retry(self, event: RetryScheduled) -> None:
        self._retries(event.endpoint, event.kind).inc()

    def _failover(self, event: FailedOver) -> None:
        # An empty kind: the move was refused admission (breaker, full) before any error.
        self._failovers(event.endpoint, event.kind or "unavailable").inc()

    def _seam(self, event: StreamSeam) -> None:
        self._seams(event.from_endpoint, event.to_endpoint, event.mode).inc()

    def _hedge_started(self, event: HedgeStarted) -> None:
        self._hedges("started").inc()

    def _hedge_won(self, event: HedgeWon) -> None:
        self._hedges("won").inc()

    def _ejected(self, event: Ejected) -> None:
        self._ejections(event.name).inc()

    def _degraded_answer(self, event: DegradedAnswer) -> None:
        self._degraded(event.group).inc()

    def _panic(self, event: PanicMode) -> None:
        self._panics.inc()

    def _transition(self, event: BreakerTransition) -> None:
        self._transitions(event.name, event.new.value).inc()

    # --- observers called by the HTTP layer --------------------------------------------

    def observe_request(
        self, model: str, outcome: str, stream: bool, duration: float, overhead: float | None
    ) -> None:
        """One client request ended. `overhead` is None when it is unknown (errors)."""
        model = self._model_label(model)
        flag = "true" if stream else "false"
        self._requests(model, outcome, flag).inc()
        self._request_duration(model, flag).observe(duration)
        if overhead is not None:
            self._overhead.observe(max(0.0, overhead))

    def observe_first_token(self, model: str, seconds: float) -> None:
        """A streaming request sent its first token `seconds` after it arrived."""
        self._first_token(self._model_label(model)).observe(seconds)

    def observe_inter_token(self, endpoint: str, seconds: float) -> None:
        """The gap between two consecutive chunks of a stream served by `endpoint`."""
        self._inter_token(endpoint).observe(seconds)

    def observe_events_dropped(self, count: int = 1) -> None:
        """An event-stream client fell behind and lost `count` events."""
        self._events_dropped.inc(count)

    def _model_label(self, model: str) -> str:
        if self._known_model is not None:
            return model if self._known_model(model) else OTHER_MODEL
        if model in self._models:
            return model
        if len(self._models) >= MAX_MODEL_LABELS:
            return OTHER_MODEL
        self._models.add(model)
        return model

    # --- the page ----------------------------------------------------------------------

    def render(self, endpoints: Iterable[EndpointGauges] = ()) -> bytes:
        """The Prometheus text page. `endpoints` (the router's `status()`) feeds the
        per-endpoint gauges; without it they are absent rather than stale."""
        self._endpoints.snapshot = tuple(endpoints)
        try:
            return generate_latest(self.registry)
        finally:
            self._endpoints.snapshot = ()
