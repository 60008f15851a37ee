"""`GatewayTracing` from settings: sampling, the service's resource, what an endpoint
is called in a span."""

from __future__ import annotations

from opentelemetry import context
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

from bastion.config.schema import EndpointConfig
from bastion.config.tracing_schema import TracingSettings
from bastion.observability.events import RequestFinished
from bastion.observability.tracing import EndpointInfo
from bastion.server.tracing import GatewayTracing, endpoint_info

CALLER_TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"


def built(**settings: object) -> tuple[GatewayTracing, InMemorySpanExporter]:
    tracing = GatewayTracing.from_settings(
        TracingSettings.model_validate({"enabled": True, "exporter": "none", **settings})
    )
    exporter = InMemorySpanExporter()
    tracing.provider.add_span_processor(SimpleSpanProcessor(exporter))  # type: ignore[attr-defined]
    return tracing, exporter


FINISHED = RequestFinished("r1", "local", True, 1, 0.1, False, model="chat")


def test_spans_name_the_service() -> None:
    tracing, exporter = built(service_name="edge-gateway")
    tracing.recorder(FINISHED)
    (span,) = exporter.get_finished_spans()
    assert span.resource.attributes["service.name"] == "edge-gateway"


def test_sample_ratio_drops_traces_that_start_here() -> None:
    tracing, exporter = built(sample_ratio=0)
    tracing.recorder(FINISHED)
    assert exporter.get_finished_spans() == ()


def test_a_callers_sampled_trace_is_kept_whatever_the_ratio() -> None:
    tracing, exporter = built(sample_ratio=0)
    caller = TraceContextTextMapPropagator().extract(
        {"traceparent": f"00-{CALLER_TRACE}-00f067aa0ba902b7-01"}
    )
    token = context.attach(caller)
    try:
        tracing.recorder(FINISHED)
    finally:
        context.detach(token)
    (span,) = exporter.get_finished_spans()
    assert format(span.context.trace_id, "032x") == CALLER_TRACE


async def test_a_built_provider_is_shut_down_on_close() -> None:
    tracing, exporter = built()
    await tracing.close()
    tracing.recorder(FINISHED)
    assert exporter.get_finished_spans() == ()


def endpoint(**fields: object) -> EndpointConfig:
    return EndpointConfig(**{"id": "e", "model": "m", **fields})


def test_endpoint_info_reads_host_and_port_from_the_base_url() -> None:
    assert endpoint_info(
        endpoint(provider="openai", base_url="https://api.openai.com/v1")
    ) == EndpointInfo("openai", "api.openai.com", 443)
    assert endpoint_info(
        endpoint(provider="openai", base_url="http://127.0.0.1:8000/v1")
    ) == EndpointInfo("openai", "127.0.0.1", 8000)


def test_endpoint_info_for_anthropic_defaults_to_its_api() -> None:
    assert endpoint_info(endpoint(provider="anthropic")) == EndpointInfo(
        "anthropic", "api.anthropic.com", 443
    )


def test_a_scripted_endpoint_has_no_address() -> None:
    assert endpoint_info(endpoint(provider="scripted", reply="hi")) == EndpointInfo("scripted")
