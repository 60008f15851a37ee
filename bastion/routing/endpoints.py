"""The live state the router keeps per endpoint: its model, breaker, budget, latency."""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from typing import Generic

from typing_extensions import TypeVar

from bastion.models.base import ChatModel, Endpoint
from bastion.resilience.breaker import CircuitBreaker
from bastion.resilience.budget import RetryBudget

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


@dataclass(frozen=True, slots=True)
class AdaptiveFirstToken:
    """How long a stream may wait for its first token where the endpoint sets no
    `timeouts.first_token` of its own:

        clamp(quantile(recent TTFTs, q) × factor, floor, ceiling)

    over the last `window` times to first token, and `initial` until `min_samples` are
    in. A fast model then leaves a silent upstream within seconds, and a reasoning model
    is given the minutes it needs. A first-token timeout counts as a sample of its
    limit, so an endpoint that is slower than its limit raises it by `factor` each time
    instead of timing out forever.
    """

    quantile: float = 0.95
    factor: float = 3.0
    floor: float = 1.0
    ceiling: float = 120.0
    initial: float = 30.0
    min_samples: int = 10
    window: int = 100

    def __post_init__(self) -> None:
        checks = (
            ("quantile", 0 < self.quantile <= 1, "in (0, 1]"),
            ("factor", self.factor >= 1, "at least 1"),
            ("floor", self.floor > 0, "positive"),
            ("ceiling", self.ceiling >= self.floor, "at least floor"),
            ("initial", self.initial > 0, "positive"),
            ("min_samples", self.min_samples >= 1, "at least 1"),
            ("window", self.window >= self.min_samples, "at least min_samples"),
        )
        for name, ok, wanted in checks:
            if not ok:
                raise ValueError(f"first_token {name} must be {wanted}, got {getattr(self, name)}")


class FirstTokenLimit:
    """The learned first-token limit of one endpoint (see `AdaptiveFirstToken`).

    Recomputed every few samples rather than on every read: sorting the window is
    cheap, but the limit is read on every stream."""

    __slots__ = ("_config", "_limit", "_samples", "_stale")

    # Samples between recomputations of the quantile.
    _EVERY = 8

    def __init__(self, config: AdaptiveFirstToken) -> None:
        self._config = config
        self._samples: deque[float] = deque(maxlen=config.window)
        self._limit = config.initial
        self._stale = 0

    @property
    def value(self) -> float:
        return self._limit

    def add(self, seconds: float) -> None:
        self._samples.append(seconds)
        self._stale += 1
        count = len(self._samples)
        if count < self._config.min_samples:
            return
        if self._stale >= self._EVERY or count == self._config.min_samples:
            self._stale = 0
            self._limit = self._compute()

    def _compute(self) -> float:
        cfg = self._config
        ordered = sorted(self._samples)
        index = min(len(ordered) - 1, int(cfg.quantile * len(ordered)))
        return min(max(ordered[index] * cfg.factor, cfg.floor), cfg.ceiling)


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
