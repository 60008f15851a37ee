"""Tracing at the HTTP edge: the tracer, the server span, the caller's trace context.

    tracing: {enabled: true, service_name: bastion, exporter: otlp,
              endpoint: "http://collector:4318/v1/traces", sample_ratio: 0.1}

A traced request gets a SERVER span, `POST /v1/chat/completions` (HTTP conventions),
continuing the caller's W3C `traceparent` if it sent one; the router's events for it
become the request and attempt spans beneath (`bastion.observability.tracing`).

The gateway imports this module only when tracing is enabled, so Bastion without the
`otel` extra never loads OpenTelemetry and a gateway with tracing off pays nothing.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Mapping
from urllib.parse import urlsplit

from aiohttp import web
from opentelemetry import trace
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, ConsoleSpanExporter, SpanExporter
from opentelemetry.sdk.trace.sampling import ParentBasedTraceIdRatio
from opentelemetry.trace import SpanKind, Status, StatusCode
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

from bastion.config.schema import BastionConfig, EndpointConfig
from bastion.config.tracing_schema import TracingSettings
from bastion.models.anthropic import DEFAULT_BASE_URL as ANTHROPIC_URL
from bastion.observability.tracing import Attributes, EndpointInfo, SpanRecorder
from bastion.server.common import lossy_header

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
Middleware = Callable[[web.Request, Handler], Awaitable[web.StreamResponse]]

# The routes that reach a model. Probes, scrapes and the event stream would bury them.
TRACED_ROUTES = frozenset(
    {
        "/v1/chat/completions",
        "/api/v1/agents/{name}/generate",
        "/api/v1/agents/{name}/stream",
    }
)

_DEFAULT_PORTS = {"http": 80, "https": 443}


class GatewayTracing:
    """The gateway's tracer provider, the span recorder to subscribe to its events, and
    the middleware that opens a server span per traced request.

    A provider handed in (tests, an application's own) is not this object's to shut
    down; one built `from_settings` is."""

    def __init__(self, provider: trace.TracerProvider, *, owned: bool = False) -> None:
        self.provider = provider
        self._owned = owned
        tracer = provider.get_tracer("bastion")
        self.recorder = SpanRecorder(tracer)
        self.middleware = server_span_middleware(tracer)

    @classmethod
    def from_settings(cls, settings: TracingSettings) -> GatewayTracing:
        provider = TracerProvider(
            sampler=ParentBasedTraceIdRatio(settings.sample_ratio),
            resource=Resource.create({"service.name": settings.service_name}),
        )
        exporter = _exporter(settings)
        if exporter is not None:
            provider.add_span_processor(BatchSpanProcessor(exporter))
        return cls(provider, owned=True)

    def describe(self, config: BastionConfig) -> None:
        """Tell the recorder about the config's endpoints (at start and on reload)."""
        self.recorder.describe({e.id: endpoint_info(e) for e in config.endpoints})

    async def close(self) -> None:
        """Flush and stop the exporter, off the event loop: an export may block."""
        if self._owned and isinstance(self.provider, TracerProvider):
            await asyncio.to_thread(self.provider.shutdown)


def _exporter(settings: TracingSettings) -> SpanExporter | None:
    if settings.exporter == "console":
        return ConsoleSpanExporter()
    if settings.exporter == "otlp":
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

        return OTLPSpanExporter(endpoint=settings.endpoint)
    return None


def endpoint_info(endpoint: EndpointConfig) -> EndpointInfo:
    """`gen_ai.provider.name` and `server.address`/`server.port` for an endpoint."""
    url = endpoint.base_url or (ANTHROPIC_URL if endpoint.provider == "anthropic" else "")
    if not url:  # scripted: in process
        return EndpointInfo(endpoint.provider)
    parts = urlsplit(url)
    return EndpointInfo(
        endpoint.provider, parts.hostname, parts.port or _DEFAULT_PORTS.get(parts.scheme)
    )


def server_span_middleware(tracer: trace.Tracer) -> Middleware:
    """A middleware that wraps each request to a `TRACED_ROUTES` route in a SERVER span,
    the child of the caller's `traceparent` when there is one, and current while the
    handler runs, so the router's spans for the request hang beneath it."""
    propagator = TraceContextTextMapPropagator()

    @web.middleware
    async def tracing_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
        resource = request.match_info.route.resource
        route = resource.canonical if resource is not None else None
        if route not in TRACED_ROUTES:
            return await handler(request)
        parent = propagator.extract(request.headers)
        with tracer.start_as_current_span(
            f"{request.method} {route}",
            context=parent,
            kind=SpanKind.SERVER,
            attributes=_request_attributes(request, route),
        ) as span:
            try:
                response = await handler(request)
            except web.HTTPException as exc:
                _record_status(span, exc.status)
                raise
            _record_status(span, response.status)
            return response

    return tracing_middleware


def _request_attributes(request: web.Request, route: str) -> Attributes:
    attributes: Attributes = {
        "http.request.method": request.method,
        "http.route": route,
        "url.path": request.path,
        "url.scheme": request.scheme,
        "network.protocol.version": f"{request.version.major}.{request.version.minor}",
    }
    host, _, port = request.host.rpartition(":")
    if host and port.isdigit():
        attributes["server.address"] = host
        attributes["server.port"] = int(port)
    else:
        attributes["server.address"] = request.host
    optional: Mapping[str, str | None] = {
        "client.address": request.remote,
        # Not UTF-8, it would fail the exporter's whole batch.
        "user_agent.original": lossy_header(request.headers.get("User-Agent", "")),
    }
    attributes.update({k: v for k, v in optional.items() if v})
    return attributes


def _record_status(span: trace.Span, status: int) -> None:
    span.set_attribute("http.response.status_code", status)
    # HTTP conventions: for a server, only 5xx is an error; a 4xx is the caller's.
    if status >= 500:
        span.set_attribute("error.type", str(status))
        span.set_status(Status(StatusCode.ERROR))
