"""The one seam every provider implements, and the description of an endpoint."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Literal, Protocol, runtime_checkable

from bastion.models.transport_options import TransportOptions
from bastion.types import ChatRequest, ChatResponse, StreamEvent

Prefill = Literal["auto", "supported", "unsupported"]


@dataclass(frozen=True, slots=True)
class Timeouts:
    """Per-attempt time bounds, in seconds.

    `connect` bounds the TCP/TLS handshake; `headers` the wait for response headers
    (None: `first_token` for streams; for a complete answer the headers come with it,
    so only `total` bounds them); `first_token` the wait for the first content of a
    stream — None (the default) lets the router learn it from the endpoint's observed
    time to first token (`routing.AdaptiveFirstToken`); `idle` the gap between two
    chunks; `total` the whole attempt. `total`, `first_token` and `idle` are enforced
    by the router around the model's call.
    """

    connect: float = 2.0
    headers: float | None = None
    first_token: float | None = None
    idle: float = 30.0
    total: float = 120.0

    def headers_for(self, stream: bool) -> float | None:
        """The model's own bound on the headers; None leaves it to the attempt's `total`
        (one timer per attempt instead of two on the hot path)."""
        if self.headers is not None:
            return self.headers
        return self.first_token if stream else None


@dataclass(frozen=True, slots=True)
class HealthCheck:
    """Active probing. `mode` "http" GETs `path` under the base URL (no tokens
    spent); "completion" asks for one token; "off" disables probing."""

    interval: float = 5.0
    timeout: float = 2.0
    mode: Literal["http", "completion", "off"] = "http"
    path: str | None = None  # None: the provider's own (OpenAI "/models", Anthropic "/v1/models")
    healthy_after: int = 2
    unhealthy_after: int = 2


@dataclass(frozen=True, slots=True)
class Endpoint:
    """A concrete deployment of a model: where it is and how to treat it."""

    id: str
    provider: str
    model: str
    base_url: str = ""
    api_key: str | None = field(default=None, repr=False)
    context_window: int | None = None
    weight: float = 1.0
    max_concurrency: int | None = None
    timeouts: Timeouts = field(default_factory=Timeouts)
    health: HealthCheck = field(default_factory=HealthCheck)
    prefill: Prefill = "auto"
    headers: tuple[tuple[str, str], ...] = field(default=(), repr=False)
    transport: TransportOptions = field(default_factory=TransportOptions)


@runtime_checkable
class ChatModel(Protocol):
    """A model that answers chat requests. Implementations raise only
    `bastion.resilience.errors.UpstreamError` (and its subclasses) for upstream
    failures; they translate their transport's exceptions at their edge."""

    @property
    def model_name(self) -> str: ...

    async def complete(self, request: ChatRequest) -> ChatResponse: ...

    def stream(self, request: ChatRequest) -> AsyncIterator[StreamEvent]:
        """Yield content events, then exactly one StreamFinish. A stream that ends
        without a finish reason raises StreamBroken rather than ending quietly."""
        ...


@runtime_checkable
class HealthProbe(Protocol):
    """Optional: a provider that can tell whether it is up without spending tokens."""

    async def probe(self, mode: str, path: str | None, timeout: float) -> None: ...  # noqa: ASYNC109


@runtime_checkable
class Closeable(Protocol):
    async def aclose(self) -> None: ...
