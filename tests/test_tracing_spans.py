"""`SpanRecorder`: the router's events in, GenAI spans out — one request span, one
child span per upstream attempt, retries, failovers and seams as span events."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode

from bastion import Router, TextDelta, chat
from bastion.observability.events import (
    AttemptFinished,
    FailedOver,
    RequestFinished,
    RetryScheduled,
)
from bastion.observability.tracing import EndpointInfo, SpanRecorder
from bastion.testing import Fault, Fleet

QUESTION = chat("Tell me about the fox.")
SECOND = 1_000_000_000


class Ticks:
    """A wall clock in nanoseconds that the test moves."""

    def __init__(self, now: int = 1_700_000_000 * SECOND) -> None:
        self.now = now

    def __call__(self) -> int:
        return self.now


@pytest.fixture
def exporter() -> Iterator[InMemorySpanExporter]:
    exporter = InMemorySpanExporter()
    yield exporter
    exporter.shutdown()


@pytest.fixture
def provider(exporter: InMemorySpanExporter) -> TracerProvider:
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    return provider


def recorder_for(provider: TracerProvider, **kwargs: Any) -> SpanRecorder:
    endpoints = {
        "primary": EndpointInfo("openai", "primary.example", 443),
        "secondary": EndpointInfo("anthropic", "api.anthropic.com", 443),
    }
    return SpanRecorder(provider.get_tracer("test"), endpoints, **kwargs)


def by_name(spans: tuple[ReadableSpan, ...]) -> dict[str, ReadableSpan]:
    return {span.name: span for span in spans}


# --- events in, spans out --------------------------------------------------------------


def test_a_failover_is_one_request_span_over_two_attempt_spans(
    provider: TracerProvider, exporter: InMemorySpanExporter
) -> None:
    clock = Ticks()
    record = recorder_for(provider, time_ns=clock)
    start = clock.now
    clock.now += SECOND
    record(AttemptFinished("r1", "primary", "model-primary", "unavailable", 503, 1.0))
    record(FailedOver("r1", "primary", "unavailable", "failover"))
    clock.now += 2 * SECOND
    record(AttemptFinished("r1", "secondary", "model-secondary", None, None, 2.0))
    record(RequestFinished("r1", "secondary", True, 2, 3.0, False, model="chat"))

    spans = by_name(exporter.get_finished_spans())
    request = spans["chat chat"]
    failed, served = spans["chat model-primary"], spans["chat model-secondary"]
    assert request.kind is SpanKind.INTERNAL
    assert (request.start_time, request.end_time) == (start, start + 3 * SECOND)
    assert request.attributes == {
        "gen_ai.operation.name": "chat",
        "gen_ai.request.model": "chat",
        "gen_ai.response.model": "model-secondary",
        "gen_ai.provider.name": "anthropic",
        "gen_ai.request.stream": False,
        "bastion.request_id": "r1",
        "bastion.attempts": 2,
        "bastion.endpoint": "secondary",
    }
    assert request.status.status_code is StatusCode.UNSET
    for attempt in (failed, served):
        assert attempt.parent is not None and attempt.parent.span_id == request.context.span_id
        assert attempt.kind is SpanKind.CLIENT
    assert (failed.start_time, failed.end_time) == (start, start + SECOND)
    assert (served.start_time, served.end_time) == (start + SECOND, start + 3 * SECOND)
    assert failed.attributes is not None
    assert failed.attributes["error.type"] == "unavailable"
    assert failed.attributes["http.response.status_code"] == 503
    assert failed.attributes["gen_ai.provider.name"] == "openai"
    assert (failed.attributes["server.address"], failed.attributes["server.port"]) == (
        "primary.example",
        443,
    )
    assert failed.status.status_code is StatusCode.ERROR
    assert served.attributes is not None and "error.type" not in served.attributes
    (failover,) = request.events
    assert failover.name == "bastion.failover"
    assert failover.timestamp == start + SECOND
    assert dict(failover.attributes or {}) == {
        "bastion.endpoint": "primary",
        "bastion.reason": "failover",
        "error.type": "unavailable",
    }


def test_a_failed_request_carries_error_type_and_error_status(
    provider: TracerProvider, exporter: InMemorySpanExporter
) -> None:
    record = recorder_for(provider)
    record(AttemptFinished("r1", "primary", "model-primary", "server_error", 500, 0.1))
    record(RetryScheduled("r1", "primary", "server_error", 1, 0.05))
    record(AttemptFinished("r1", "primary", "model-primary", "server_error", 500, 0.1))
    record(RequestFinished("r1", None, False, 2, 0.3, True, "server_error", "chat"))

    spans = exporter.get_finished_spans()
    request = next(s for s in spans if s.name == "chat chat")
    assert request.attributes is not None
    assert request.attributes["error.type"] == "server_error"
    assert request.attributes["gen_ai.request.stream"] is True
    assert "gen_ai.response.model" not in request.attributes
    assert request.status.status_code is StatusCode.ERROR
    assert [e.name for e in request.events] == ["bastion.retry"]
    assert len([s for s in spans if s.name == "chat model-primary"]) == 2


def test_requests_are_kept_apart_and_forgotten_once_finished(
    provider: TracerProvider, exporter: InMemorySpanExporter
) -> None:
    record = recorder_for(provider)
    record(AttemptFinished("a", "primary", "model-primary", None, None, 0.1))
    record(AttemptFinished("b", "secondary", "model-secondary", None, None, 0.1))
    record(RequestFinished("a", "primary", True, 1, 0.1, False, model="chat"))
    assert record.pending == 1
    record(RequestFinished("b", "secondary", True, 1, 0.1, False, model="chat"))
    assert record.pending == 0
    trace_ids = {s.name: s.context.trace_id for s in exporter.get_finished_spans()}
    assert trace_ids["chat model-primary"] != trace_ids["chat model-secondary"]


def test_requests_that_never_finish_are_bounded(provider: TracerProvider) -> None:
    record = recorder_for(provider, max_pending=3)
    for index in range(10):
        record(AttemptFinished(f"r{index}", "primary", "model-primary", None, None, 0.1))
    assert record.pending == 3


def test_events_of_no_request_are_ignored(
    provider: TracerProvider, exporter: InMemorySpanExporter
) -> None:
    from bastion.observability.events import EndpointIsolated

    record = recorder_for(provider)
    record(EndpointIsolated("primary", True))
    assert record.pending == 0 and not exporter.get_finished_spans()


# --- a real router over the simulated fleet ----------------------------------------------


@pytest.fixture
async def fleet() -> AsyncIterator[Fleet]:
    async with Fleet(["primary", "secondary"]) as running:
        yield running


@pytest.fixture
async def router(fleet: Fleet, provider: TracerProvider) -> AsyncIterator[Router]:
    config = {
        "endpoints": [
            {
                "id": up.name,
                "provider": "openai",
                "model": f"model-{up.name}",
                "base_url": up.base_url,
                "health": False,
                "timeouts": {"connect": "300ms", "first_token": "1s", "idle": "1s"},
            }
            for up in fleet
        ],
        "models": {"chat": {"targets": ["primary", "secondary"]}},
        "retry": {"unavailable": {"retries": 0}},
        "health_checks": False,
    }
    endpoints = {up.name: EndpointInfo("openai", "127.0.0.1", up.port) for up in fleet}
    recorder = SpanRecorder(provider.get_tracer("test"), endpoints)
    async with Router.from_config(config, hooks=[recorder]) as running:
        yield running


async def test_router_failover_traces_two_attempts_under_one_request(
    fleet: Fleet, router: Router, exporter: InMemorySpanExporter
) -> None:
    fleet["primary"].set_default(Fault.status(503))
    answer = await router.complete(QUESTION, model="chat")
    assert answer.endpoint == "secondary"

    spans = exporter.get_finished_spans()
    (request,) = [s for s in spans if s.kind is SpanKind.INTERNAL]
    attempts = sorted((s for s in spans if s.kind is SpanKind.CLIENT), key=lambda s: s.start_time)
    assert [s.name for s in attempts] == ["chat model-primary", "chat model-secondary"]
    assert all(
        s.parent is not None and s.parent.span_id == request.context.span_id for s in attempts
    )
    assert attempts[0].attributes is not None and attempts[1].attributes is not None
    assert attempts[0].attributes["error.type"] == "unavailable"
    assert attempts[1].attributes["server.port"] == fleet["secondary"].port
    # The tokens and the model the upstream reported, on the attempt and on the request.
    for span in (attempts[1], request):
        assert span.attributes is not None
        assert span.attributes["gen_ai.usage.input_tokens"] == answer.usage.prompt_tokens > 0
        assert span.attributes["gen_ai.usage.output_tokens"] == answer.usage.completion_tokens > 0
        assert span.attributes["gen_ai.response.model"] == answer.model
    assert "gen_ai.usage.input_tokens" not in attempts[0].attributes
    assert request.start_time is not None and request.end_time is not None
    assert request.start_time <= attempts[0].start_time
    assert attempts[1].end_time <= request.end_time
    assert [e.name for e in request.events] == ["bastion.failover"]


async def test_router_stream_seam_is_an_event_on_the_request_span(
    fleet: Fleet, router: Router, exporter: InMemorySpanExporter
) -> None:
    fleet["primary"].set_default(Fault.cut(after_chars=17))
    stream = router.stream(QUESTION, model="chat")
    text = "".join([e.text async for e in stream if isinstance(e, TextDelta)])
    assert text and stream.endpoint == "secondary"

    (request,) = [s for s in exporter.get_finished_spans() if s.kind is SpanKind.INTERNAL]
    assert request.attributes is not None and request.attributes["gen_ai.request.stream"] is True
    seam = next(e for e in request.events if e.name == "bastion.stream_seam")
    assert seam.attributes is not None
    assert (seam.attributes["bastion.from_endpoint"], seam.attributes["bastion.to_endpoint"]) == (
        "primary",
        "secondary",
    )
