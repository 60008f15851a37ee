"""The live state the router keeps per endpoint: its model, breaker, budget, latency."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Generic

from typing_extensions import TypeVar

from bastion.models.base import ChatModel, Endpoint
from bastion.resilience.breaker import CircuitBreaker
from bastion.resilience.budget import RetryBudget
from bastion.resilience.learned import AdaptiveFirstToken, FirstTokenLimit
from bastion.types import ChatRequest

# Providers whose API continues a trailing assistant message (the scripted model does too).
PREFILL_PROVIDERS = frozenset({"anthropic", "scripted"})


@dataclass(slots=True)
class Ewma:
    """Exponentially weighted mean; `alpha` weighs the newest sample."""

    alpha: float = 0.2
    mean: float | None = None

    def add(self, sample: float) -> None:
        if self.mean is None:
            self.mean = sample
            return
        self.mean += self.alpha * (sample - self.mean)


# What an endpoint calls: a chat model by default; an MCP server's session or a remote
# agent's client for other call types. The engine never calls it; strategies do.
M = TypeVar("M", default=ChatModel)


@dataclass(slots=True)
class EndpointRuntime(Generic[M]):
    endpoint: Endpoint
    model: M
    breaker: CircuitBreaker
    budget: RetryBudget
    latency: Ewma = field(default_factory=Ewma)
    ttft: Ewma = field(default_factory=Ewma)
    in_flight: int = 0
    isolated: bool = False
    # Learned at run time: None until the endpoint has answered a prefill either way.
    prefill_ok: bool | None = None
    served: int = 0
    failed: int = 0
    first_token: FirstTokenLimit = field(
        default_factory=lambda: FirstTokenLimit(AdaptiveFirstToken())
    )

    @property
    def id(self) -> str:
        return self.endpoint.id

    @property
    def full(self) -> bool:
        limit = self.endpoint.max_concurrency
        return limit is not None and self.in_flight >= limit

    def streams_whole(self, request: ChatRequest) -> bool:
        """Whether a request for one whole answer is asked here as a stream read whole
        (see `Endpoint.upstream_stream`)."""
        if self.endpoint.upstream_stream != "always":
            return False  # `auto` is `never` for now: see `Endpoint`
        # The stream is read for choice 0 only.
        choices = request.extra.get("n") if request.extra else None
        return choices is None or choices == 1

    def first_token_limit(self) -> float:
        """The endpoint's own `timeouts.first_token`, else the learned one."""
        own = self.endpoint.timeouts.first_token
        return own if own is not None else self.first_token.value

    def accepts_prefill(self) -> bool:
        """Whether a broken stream is continued here by prefill (else by instruction).

        `prefill: supported` prefills whatever the provider (vLLM, llama.cpp and other
        servers that continue a trailing assistant message opt in); `unsupported` never
        prefills. `auto` follows what the provider does with a trailing assistant
        message: Anthropic continues it, so it is prefilled; OpenAI's API answers it
        anew, so an OpenAI-compatible endpoint is asked by instruction. An endpoint that
        has rejected a prefill is asked by instruction from then on, either way.
        """
        if self.endpoint.prefill == "unsupported" or self.prefill_ok is False:
            return False
        return self.endpoint.prefill == "supported" or self.endpoint.provider in PREFILL_PROVIDERS
