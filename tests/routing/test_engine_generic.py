"""The engine is generic over what is called: a tool server's replicas fail over with
the same policies, breakers and events as chat endpoints."""

from __future__ import annotations

import random
from dataclasses import dataclass, field

import pytest

from bastion import Endpoint, FailoverError, ModelGroup, RouterOptions
from bastion.observability.events import EventBus, FailedOver
from bastion.resilience.breaker import BreakerConfig, BreakerState
from bastion.resilience.clock import FakeClock
from bastion.resilience.errors import ErrorKind, UpstreamError
from bastion.routing.core import RouterCore
from bastion.routing.engine import call_with_failover
from bastion.routing.plan import Candidate


@dataclass
class ToolReplica:
    """A stand-in for one replica of a tool server: not a chat model at all."""

    name: str
    failures: list[ErrorKind] = field(default_factory=list)
    calls: list[str] = field(default_factory=list)

    async def call_tool(self, tool: str, order: int) -> dict[str, object]:
        self.calls.append(tool)
        if self.failures:
            raise UpstreamError(self.failures.pop(0), f"{self.name} failed", endpoint=self.name)
        return {"order": order, "status": "shipped", "by": self.name}


def core_of(*replicas: ToolReplica, events: list | None = None) -> RouterCore[ToolReplica]:
    bus = EventBus((events.append,) if events is not None else ())
    return RouterCore(
        [(Endpoint(id=r.name, provider="tool", model="orders"), r) for r in replicas],
        {"orders": ModelGroup.of(*(r.name for r in replicas))},
        RouterOptions(health_checks=False, breaker=BreakerConfig(consecutive_failures=2)),
        clock=FakeClock(),
        rng=random.Random(1),
        bus=bus,
    )


def lookup(candidate: Candidate[ToolReplica]):
    return candidate.runtime.model.call_tool("lookup_order", 42)


async def test_a_tool_call_fails_over_to_another_replica():
    events: list = []
    first = ToolReplica("r1", [ErrorKind.CONNECTION])
    second = ToolReplica("r2")
    core = core_of(first, second, events=events)
    result = await call_with_failover(core, "orders", lookup)
    assert result["by"] == "r2"
    assert [e.endpoint for e in events if isinstance(e, FailedOver)] == ["r1"]
    assert all(rt.in_flight == 0 for rt in core.runtimes.values())


async def test_a_tool_replicas_breaker_opens_and_later_calls_skip_it():
    first = ToolReplica("r1", [ErrorKind.UNAVAILABLE] * 2)
    second = ToolReplica("r2")
    core = core_of(first, second)
    for _ in range(3):
        await call_with_failover(core, "orders", lookup)
    assert core.runtimes["r1"].breaker.state is BreakerState.OPEN
    assert len(first.calls) == 2 and len(second.calls) == 3


async def test_a_refused_tool_call_is_returned_not_retried_elsewhere():
    first = ToolReplica("r1", [ErrorKind.INVALID_REQUEST])
    second = ToolReplica("r2")
    with pytest.raises(FailoverError) as caught:
        await call_with_failover(core_of(first, second), "orders", lookup)
    assert caught.value.kind is ErrorKind.INVALID_REQUEST
    assert second.calls == []
