"""The demo's story: three upstreams, the primary goes down and comes back.

Phases are fractions of the run, so a short run tells the same story as a long one.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from bastion.testing import Fault, Fleet

ANSWER = (
    "Bastion keeps this answer flowing: when the primary fails, the request moves on, "
    "and a stream cut halfway is continued elsewhere without repeating a word."
)


@dataclass(frozen=True, slots=True)
class Phase:
    start: float  # fraction of the run
    title: str
    faults: dict[str, Fault]


PHASES = (
    Phase(0.0, "all healthy — the primary serves", {}),
    Phase(
        0.25,
        "primary down (503s and resets) — retries, failover, breaker opens",
        {"primary": Fault.status(503)},
    ),
    Phase(
        0.45,
        "primary still down, secondary cuts some streams mid-answer — seamless continuation",
        {"primary": Fault.reset(), "secondary": Fault.cut(after_chars=60)},
    ),
    Phase(0.65, "primary healed — half-open probes, traffic returns", {}),
)

ENDPOINTS = (("primary", "gpt-4o-mini"), ("secondary", "gpt-4o-mini"), ("local", "llama3.2"))


def demo_config(fleet: Fleet) -> dict[str, Any]:
    """The router's config: short timeouts and breaker times, so a short run shows
    a breaker open, half-open and close again."""
    urls = fleet.urls()
    return {
        "endpoints": [
            {
                "id": name,
                "provider": "openai",
                "model": model,
                "base_url": urls[name],
                "context_window": 128_000,
                "timeouts": {"connect": "500ms", "first_token": "2s", "idle": "2s", "total": "10s"},
                "health": {"interval": "500ms", "timeout": "300ms", "unhealthy_after": 2},
            }
            for name, model in ENDPOINTS
        ],
        "models": {
            "chat": {
                "strategy": "priority",
                "targets": ["primary", "secondary"],
                "fallbacks": ["local"],
                "degraded": {"message": "Service is degraded, please retry shortly."},
            }
        },
        "default_model": "chat",
        "breaker": {"consecutive_failures": 3, "open_for": "1s", "open_for_max": "2s"},
        "outlier": {"consecutive_errors": 5, "base_ejection": "1s", "max_ejection": "2s"},
        "deadline": "10s",
    }


def apply(phase: Phase, fleet: Fleet) -> None:
    fleet.heal()
    for name, fault in phase.faults.items():
        fleet[name].set_default(fault)
