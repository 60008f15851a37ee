"""The Router over real loopback HTTP, in front of the simulated fleet."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest

from bastion import Router
from bastion.testing import FakeUpstream, Fleet

# Short bounds so that every timeout path runs in a fraction of a second.
FAST = {
    "connect": "300ms",
    "headers": "400ms",
    "first_token": "400ms",
    "idle": "300ms",
    "total": "5s",
}


@pytest.fixture
async def fleet() -> AsyncIterator[Fleet]:
    upstreams = [
        FakeUpstream("primary"),
        FakeUpstream("secondary"),
        FakeUpstream("noprefill", prefill="reject"),
        FakeUpstream("big"),
    ]
    async with Fleet(upstreams) as running:
        yield running


MakeRouter = Callable[..., Router]


@pytest.fixture
async def make_router(fleet: Fleet) -> AsyncIterator[MakeRouter]:
    """Build a router whose `chat` group is `targets` (default primary → secondary);
    keyword arguments override config sections; `endpoints` overrides per endpoint."""
    made: list[Router] = []

    def build(
        targets: list[str] | None = None,
        *,
        endpoints: dict[str, dict[str, Any]] | None = None,
        group: dict[str, Any] | None = None,
        hooks: list[Any] | None = None,
        **sections: Any,
    ) -> Router:
        endpoints = endpoints or {}
        config: dict[str, Any] = {
            "endpoints": [
                {
                    "id": up.name,
                    "provider": "openai",
                    "model": f"model-{up.name}",
                    "base_url": up.base_url,
                    "context_window": 100_000 if up.name == "big" else 8_000,
                    "timeouts": FAST,
                    "health": False,
                    **endpoints.get(up.name, {}),
                }
                for up in fleet
            ],
            "models": {"chat": {"targets": targets or ["primary", "secondary"], **(group or {})}},
            "default_model": "chat",
            "health_checks": False,
            **sections,
        }
        router = Router.from_config(config, hooks=hooks or ())
        made.append(router)
        return router

    yield build
    for router in made:
        await router.aclose()
