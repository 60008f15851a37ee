"""Traces through the gateway over real sockets: the server span continues the caller's
`traceparent`, and the router's request and attempt spans hang beneath it."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import openai
import pytest
from aiohttp.test_utils import TestClient, TestServer
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode

from bastion.config import load_config
from bastion.server.app import create_app
from bastion.server.gateway import Gateway
from bastion.testing import Fault, Fleet

MESSAGES: Any = [{"role": "user", "content": "Tell me about the fox."}]
CALLER_TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
CALLER_SPAN = "00f067aa0ba902b7"


def config_yaml(fleet: Fleet, *, tracing: str = "{enabled: true, exporter: none}") -> str:
    lines = ["endpoints:"]
    for up in fleet:
        lines += [
            f"  - id: {up.name}",
            "    provider: openai",
            f"    model: model-{up.name}",
            f"    base_url: {up.base_url}",
            "    health: false",
        ]
    lines += [
        "models: {chat: {targets: [primary, secondary]}}",
        "health_checks: false",
        "retry: {unavailable: {retries: 0}, server_error: {retries: 0}}",
        f"tracing: {tracing}",
    ]
    return "\n".join(lines) + "\n"


@pytest.fixture
async def fleet() -> AsyncIterator[Fleet]:
    async with Fleet(["primary", "secondary"]) as running:
        yield running


@pytest.fixture
def exporter() -> InMemorySpanExporter:
    return InMemorySpanExporter()


Start = Callable[..., Awaitable[TestClient[Any, Any]]]


@pytest.fixture
async def start(fleet: Fleet, exporter: InMemorySpanExporter) -> AsyncIterator[Start]:
    """Start a gateway on a loopback port, its spans going to `exporter`."""
    clients: list[TestClient[Any, Any]] = []

    async def run(**kwargs: Any) -> TestClient[Any, Any]:
        provider = TracerProvider()
        provider.add_span_processor(SimpleSpanProcessor(exporter))
        gateway = Gateway(load_config(config_yaml(fleet, **kwargs)), tracer_provider=provider)
        client: TestClient[Any, Any] = TestClient(TestServer(create_app(gateway)))
        await client.start_server()
        clients.append(client)
        return client

    yield run
    for client in clients:
        await client.close()


def sdk(client: TestClient[Any, Any], **headers: str) -> openai.AsyncOpenAI:
    return openai.AsyncOpenAI(
        base_url=str(client.make_url("/v1")),
        api_key="unused",
        max_retries=0,
        default_headers=headers,
    )


def one(spans: tuple[ReadableSpan, ...], kind: SpanKind) -> ReadableSpan:
    (span,) = [s for s in spans if s.kind is kind]
    return span


def child_of(span: ReadableSpan, parent: ReadableSpan) -> bool:
    return span.parent is not None and span.parent.span_id == parent.context.span_id


async def test_failover_is_one_request_span_with_two_attempts_under_the_server_span(
    start: Start, fleet: Fleet, exporter: InMemorySpanExporter
) -> None:
    fleet["primary"].set_default(Fault.status(503))
    async with sdk(await start()) as client:
        answer = await client.chat.completions.create(model="chat", messages=MESSAGES)
    assert answer.choices[0].message.content

    spans = exporter.get_finished_spans()
    server = one(spans, SpanKind.SERVER)
    request = one(spans, SpanKind.INTERNAL)
    failed, served = sorted(
        (s for s in spans if s.kind is SpanKind.CLIENT), key=lambda s: s.start_time or 0
    )
    assert server.name == "POST /v1/chat/completions"
    assert server.attributes is not None
    assert server.attributes["http.route"] == "/v1/chat/completions"
    assert server.attributes["http.response.status_code"] == 200
    assert request.name == "chat chat" and child_of(request, server)
    assert child_of(failed, request) and child_of(served, request)
    assert failed.name == "chat model-primary" and served.name == "chat model-secondary"
    assert failed.attributes is not None and failed.attributes["error.type"] == "unavailable"
    assert failed.status.status_code is StatusCode.ERROR
    assert served.attributes is not None and "error.type" not in served.attributes
    assert served.attributes["gen_ai.provider.name"] == "openai"
    assert served.attributes["server.address"] == "127.0.0.1"


async def test_callers_traceparent_continues_through_the_gateway(
    start: Start, exporter: InMemorySpanExporter
) -> None:
    traceparent = f"00-{CALLER_TRACE}-{CALLER_SPAN}-01"
    async with sdk(await start(), traceparent=traceparent) as client:
        await client.chat.completions.create(model="chat", messages=MESSAGES)

    spans = exporter.get_finished_spans()
    assert {format(s.context.trace_id, "032x") for s in spans} == {CALLER_TRACE}
    server = one(spans, SpanKind.SERVER)
    assert server.parent is not None and server.parent.is_remote
    assert format(server.parent.span_id, "016x") == CALLER_SPAN


async def test_a_stream_is_traced_to_its_end(start: Start, exporter: InMemorySpanExporter) -> None:
    async with sdk(await start()) as client:
        chunks = await client.chat.completions.create(model="chat", messages=MESSAGES, stream=True)
        text = "".join([c.choices[0].delta.content or "" async for c in chunks if c.choices])
    assert text

    spans = exporter.get_finished_spans()
    server, request = one(spans, SpanKind.SERVER), one(spans, SpanKind.INTERNAL)
    assert child_of(request, server)
    assert request.attributes is not None and request.attributes["gen_ai.request.stream"] is True
    assert request.end_time is not None and server.end_time is not None
    assert request.end_time <= server.end_time


async def test_every_target_failing_marks_the_server_span_as_an_error(
    start: Start, fleet: Fleet, exporter: InMemorySpanExporter
) -> None:
    fleet["primary"].set_default(Fault.status(500))
    fleet["secondary"].set_default(Fault.status(500))
    client = await start()
    response = await client.post(
        "/v1/chat/completions", json={"model": "chat", "messages": MESSAGES}
    )
    assert response.status >= 500

    spans = exporter.get_finished_spans()
    server, request = one(spans, SpanKind.SERVER), one(spans, SpanKind.INTERNAL)
    assert server.attributes is not None
    assert server.attributes["error.type"] == str(response.status)
    assert server.status.status_code is StatusCode.ERROR
    assert request.attributes is not None and request.attributes["error.type"] == "server_error"


async def test_probes_and_scrapes_are_not_traced(
    start: Start, exporter: InMemorySpanExporter
) -> None:
    client = await start()
    assert (await client.get("/api/v1/health")).status == 200
    assert (await client.get("/v1/models")).status == 200
    assert exporter.get_finished_spans() == ()


async def test_tracing_off_adds_no_middleware_and_no_spans(
    start: Start, exporter: InMemorySpanExporter
) -> None:
    client = await start(tracing="{enabled: false}")
    async with sdk(client) as sdk_client:
        await sdk_client.chat.completions.create(model="chat", messages=MESSAGES)
    assert exporter.get_finished_spans() == ()
