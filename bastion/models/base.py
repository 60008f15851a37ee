"""The one seam every provider implements, and the description of an endpoint."""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from dataclasses import field
from typing import Annotated, Any, Literal, Protocol, runtime_checkable

from pydantic import AfterValidator, BeforeValidator, Field

from bastion.models.h1 import H1Target
from bastion.models.providers import PROVIDERS
from bastion.models.transport_options import TransportOptions
from bastion.resilience.settings import PositiveDuration, settings
from bastion.types import ChatRequest, ChatResponse, StreamEvent

Prefill = Literal["auto", "supported", "unsupported"]
UpstreamStream = Literal["auto", "always", "never"]


# How long a whole answer asked plainly may take to come (its headers come with it)
# unless `timeouts.headers` says otherwise: long enough for a long answer of a slow
# model, short of the 120 s `total`. `upstream_stream: always` bounds it far tighter.
WHOLE_ANSWER_HEADERS = 60.0


@settings
class Timeouts:
    """Per-attempt time bounds, in seconds (or a duration string: "2s", "150ms").

    `connect` bounds the TCP/TLS handshake; `headers` the wait for response headers
    (None: `first_token` for streams; for a whole answer asked plainly, whose headers
    come only once it is written, `WHOLE_ANSWER_HEADERS`); `first_token` the wait for
    the first content of a stream — None (the default) lets the router learn it from
    the endpoint's observed time to first token (`routing.AdaptiveFirstToken`); `idle`
    the gap between two chunks; `total` the whole attempt. `total`, `first_token`,
    `idle` and a whole answer's headers are enforced by the router around the model's
    call.
    """

    connect: PositiveDuration = 2.0
    headers: PositiveDuration | None = None
    first_token: PositiveDuration | None = None
    idle: PositiveDuration = 30.0
    total: PositiveDuration = 120.0

    def headers_for(self, stream: bool) -> float | None:
        """The model's own bound on the headers; None leaves it to the router's bound
        on the attempt (one timer per attempt instead of two on the hot path)."""
        if self.headers is not None:
            return self.headers
        return self.first_token if stream else None

    def whole_answer(self) -> tuple[float, str]:
        """The bound on a whole answer asked plainly, and the phase it is named by:
        its headers (`headers`, else `WHOLE_ANSWER_HEADERS`), or `total` if shorter."""
        headers = self.headers if self.headers is not None else WHOLE_ANSWER_HEADERS
        return (headers, "headers") if headers < self.total else (self.total, "total")


@settings
class HealthCheck:
    """Active probing. `mode` "http" GETs `path` under the base URL (no tokens
    spent); "completion" asks for one token; "off" disables probing."""

    interval: PositiveDuration = 5.0
    timeout: PositiveDuration = 2.0
    mode: Literal["http", "completion", "off"] = "http"
    path: str | None = None  # None: the provider's own (OpenAI "/models", Anthropic "/v1/models")
    healthy_after: Annotated[int, Field(ge=1)] = 2
    unhealthy_after: Annotated[int, Field(ge=1)] = 2


def _usable_url(url: str) -> str:
    # What the upstream client would refuse at the first request, refused up front.
    if url:
        H1Target.parse(url)  # ValueError: scheme, host, port, credentials
    return url


def _health(value: Any) -> Any:
    # `health: false` in a config turns probing off.
    return HealthCheck(mode="off") if value is False else value


def _pairs(value: Any) -> Any:
    return tuple(value.items()) if isinstance(value, Mapping) else value


@settings
class Endpoint:
    """A concrete deployment of a model: where it is and how to treat it.

    `provider` names an entry of `bastion.models.providers.PROVIDERS` for a router to
    build the model from; an endpoint handed to a router with its own model may name
    anything. `headers` go with every request (a mapping is accepted). `reply` is the
    fixed answer of a scripted endpoint. `health=False` turns active probing off.

    `prefill` says how a stream broken mid-answer is continued here: `auto` (default)
    prefills on Anthropic and asks an OpenAI-compatible endpoint by instruction
    (OpenAI's API answers a trailing assistant message anew); `supported` forces
    prefill (vLLM, llama.cpp); `unsupported` never prefills.

    `upstream_stream` says how a request for one whole answer is asked here: `always`
    as a stream read whole, so the first-token and idle limits bound it and a silent
    upstream is left after the first-token limit (a request for several choices, `n` >
    1, is still asked plainly); `never` as a plain request, bounded by its headers
    (`Timeouts.whole_answer`); `auto` (default) is Bastion's choice, today `never`:
    reading a stream whole costs 2.4× the client CPU of a plain answer for a short
    answer and 8–17× for a long one (docs/benchmarks.md)."""

    id: Annotated[str, Field(min_length=1)]
    provider: str
    model: Annotated[str, Field(min_length=1)]
    base_url: Annotated[str, AfterValidator(_usable_url)] = ""
    api_key: str | None = field(default=None, repr=False)
    context_window: Annotated[int | None, Field(gt=0)] = None
    weight: Annotated[float, Field(ge=0)] = 1.0
    max_concurrency: Annotated[int | None, Field(ge=1)] = None
    timeouts: Timeouts = Timeouts()
    health: Annotated[HealthCheck, BeforeValidator(_health)] = HealthCheck()
    prefill: Prefill = "auto"
    upstream_stream: UpstreamStream = "auto"
    headers: Annotated[tuple[tuple[str, str], ...], BeforeValidator(_pairs)] = field(
        default=(), repr=False
    )
    reply: str | None = None
    transport: TransportOptions = field(default_factory=TransportOptions)

    def __post_init__(self) -> None:
        known = PROVIDERS.get(self.provider)
        if self.reply is not None and (known is None or not known.scripted):
            scripted = [name for name, p in PROVIDERS.items() if p.scripted]
            raise ValueError(f"reply is only for provider {' or '.join(map(repr, scripted))}")


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
