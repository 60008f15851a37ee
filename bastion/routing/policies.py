"""Selection policies: in which order a group's targets are tried."""

from __future__ import annotations

import random
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from bastion.routing.endpoints import EndpointRuntime
from bastion.routing.groups import Strategy, Target

Order = Callable[
    [Sequence[Target], Mapping[str, EndpointRuntime[Any]], random.Random], list[Target]
]


def priority(
    targets: Sequence[Target], runtimes: Mapping[str, EndpointRuntime[Any]], rng: random.Random
) -> list[Target]:
    """As configured: the first target first."""
    return list(targets)


def weighted(
    targets: Sequence[Target], runtimes: Mapping[str, EndpointRuntime[Any]], rng: random.Random
) -> list[Target]:
    """A random order in which each target leads with probability proportional to its
    weight (weighted sampling without replacement: key = u ** (1 / weight))."""

    def key(target: Target) -> float:
        weight = runtimes[target.endpoint].endpoint.weight
        return rng.random() ** (1.0 / weight) if weight > 0 else -1.0

    return sorted(targets, key=key, reverse=True)


def least_latency(
    targets: Sequence[Target], runtimes: Mapping[str, EndpointRuntime[Any]], rng: random.Random
) -> list[Target]:
    """Fastest observed mean latency first. An endpoint never measured sorts first so
    that it gets measured; ties keep the configured order."""

    def key(target: Target) -> float:
        mean = runtimes[target.endpoint].latency.mean
        return -1.0 if mean is None else mean

    return sorted(targets, key=key)


STRATEGIES: Mapping[Strategy, Order] = {
    "priority": priority,
    "weighted": weighted,
    "least-latency": least_latency,
}
