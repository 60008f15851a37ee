"""Read-only snapshots of the router's endpoints, for status pages and the demo."""

from __future__ import annotations

from dataclasses import dataclass

from bastion.resilience.breaker import BreakerState
from bastion.routing.core import RouterCore
from bastion.routing.endpoints import EndpointRuntime


@dataclass(frozen=True, slots=True)
class EndpointStatus:
    id: str
    model: str
    provider: str
    breaker: BreakerState
    reopens_in: float
    # Half-open probes admitted and not yet answered.
    breaker_probes: int
    ejected: bool
    healthy: bool
    isolated: bool
    in_flight: int
    served: int
    failed: int
    latency_ms: float | None
    ttft_ms: float | None

    @property
    def in_service(self) -> bool:
        return (
            not self.isolated
            and not self.ejected
            and self.healthy
            and self.breaker is not BreakerState.OPEN
        )


def endpoint_status(core: RouterCore, rt: EndpointRuntime) -> EndpointStatus:
    ejected = any(d.is_ejected(rt.id) for d in core.detectors.values() if rt.id in d.members)
    return EndpointStatus(
        id=rt.id,
        model=rt.endpoint.model,
        provider=rt.endpoint.provider,
        breaker=rt.breaker.state,
        reopens_in=rt.breaker.reopens_in(),
        breaker_probes=rt.breaker.snapshot().probes_in_flight,
        ejected=ejected,
        healthy=core.health.is_healthy(rt.id),
        isolated=rt.isolated,
        in_flight=rt.in_flight,
        served=rt.served,
        failed=rt.failed,
        latency_ms=None if rt.latency.mean is None else rt.latency.mean * 1000,
        ttft_ms=None if rt.ttft.mean is None else rt.ttft.mean * 1000,
    )
