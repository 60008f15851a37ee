"""Prometheus metrics as a consumer of the events. (Minimal; being completed.)"""

from __future__ import annotations

from bastion.observability.events import Event


class Metrics:
    def __call__(self, event: Event) -> None:
        return None

    def observe_request(
        self, model: str, outcome: str, stream: bool, duration: float, overhead: float | None
    ) -> None:
        return None

    def render(self) -> bytes:
        return b""
