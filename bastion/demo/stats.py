"""What the demo counts: requests, where they were served, and what the router did."""

from __future__ import annotations

from collections import Counter, deque
from dataclasses import dataclass, field

from bastion.observability.events import (
    AttemptFinished,
    Event,
    FailedOver,
    RetryScheduled,
    StreamSeam,
)
from bastion.resilience.breaker import BreakerTransition
from bastion.resilience.health import HealthChange
from bastion.resilience.outlier import Ejected, Restored


@dataclass
class DemoStats:
    ok: int = 0
    failed: int = 0
    degraded: int = 0
    streams: int = 0
    seams: int = 0
    retries: int = 0
    failovers: int = 0
    attempts: int = 0
    served: Counter[str] = field(default_factory=Counter)
    recent_served: deque[str] = field(default_factory=lambda: deque(maxlen=40))
    upstream_errors: Counter[str] = field(default_factory=Counter)
    latencies: list[float] = field(default_factory=list)
    log: deque[str] = field(default_factory=lambda: deque(maxlen=9))
    current_phase: str = ""

    def phase(self, title: str) -> None:
        self.current_phase = title

    def note(self, line: str) -> None:
        self.log.append(line)

    def finish(
        self,
        ok: bool,
        latency: float,
        endpoint: str | None,
        attempts: int,
        degraded: bool,
        *,
        stream: bool,
        seams: int = 0,
    ) -> None:
        self.ok += ok
        self.failed += not ok
        self.degraded += degraded
        self.streams += stream
        self.seams += seams
        self.attempts += attempts
        self.latencies.append(latency)
        if endpoint:
            self.served[endpoint] += 1
            self.recent_served.append(endpoint)

    def event(self, event: Event) -> None:
        if isinstance(event, AttemptFinished) and not event.ok:
            self.upstream_errors[f"{event.endpoint}:{event.kind}"] += 1
        elif isinstance(event, RetryScheduled):
            self.retries += 1
        elif isinstance(event, FailedOver):
            self.failovers += 1
        elif isinstance(event, BreakerTransition):
            self.note(f"breaker {event.name}: {event.old.value} → {event.new.value}")
        elif isinstance(event, Ejected):
            self.note(f"ejected {event.name} for {event.until - event.at:.1f}s")
        elif isinstance(event, Restored):
            self.note(f"restored {event.name}")
        elif isinstance(event, HealthChange):
            self.note(f"health {event.name}: {'up' if event.healthy else 'down'}")
        elif isinstance(event, StreamSeam):
            pass  # counted per request

    @property
    def total(self) -> int:
        return self.ok + self.failed

    def percentile(self, q: float) -> float:
        if not self.latencies:
            return 0.0
        ordered = sorted(self.latencies)
        return ordered[min(len(ordered) - 1, int(q * len(ordered)))]
