"""The live state the router keeps per endpoint: its model, breaker, budget, latency."""

from __future__ import annotations

from dataclasses import dataclass, field

from bastion.models.base import ChatModel, Endpoint
from bastion.resilience.breaker import CircuitBreaker
from bastion.resilience.budget import RetryBudget

# Providers whose API continues a trailing assistant message (the scripted model does too).
PREFILL_PROVIDERS = frozenset({"anthropic", "scripted"})


@dataclass(slots=True)
class Ewma:
    """Exponentially weighted mean and variance; `alpha` weighs the newest sample."""

    alpha: float = 0.2
    mean: float | None = None
    var: float = 0.0

    def add(self, sample: float) -> None:
        if self.mean is None:
            self.mean = sample
            return
        diff = sample - self.mean
        incr = self.alpha * diff
        self.mean += incr
        self.var = (1 - self.alpha) * (self.var + diff * incr)


@dataclass(slots=True)
class EndpointRuntime:
    endpoint: Endpoint
    model: ChatModel
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

    @property
    def id(self) -> str:
        return self.endpoint.id

    @property
    def full(self) -> bool:
        limit = self.endpoint.max_concurrency
        return limit is not None and self.in_flight >= limit

    def accepts_prefill(self) -> bool:
        """Whether a broken stream is continued here by prefill (else by instruction).

        `prefill: supported` forces prefill (vLLM, llama.cpp and other servers that
        continue a trailing assistant message opt in); `unsupported` never prefills.
        `auto` follows what the provider does with a trailing assistant message:
        Anthropic continues it, so it is prefilled until the endpoint rejects one;
        OpenAI's API answers it anew, so an OpenAI-compatible endpoint is asked by
        instruction.
        """
        if self.endpoint.prefill == "supported":
            return True
        if self.endpoint.prefill == "unsupported":
            return False
        return self.endpoint.provider in PREFILL_PROVIDERS and self.prefill_ok is not False
