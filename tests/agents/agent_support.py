"""Seams for the agent tests: a real Router over scripted endpoints on a fake clock."""

from __future__ import annotations

import random
import uuid
from collections.abc import AsyncIterator, Sequence

from bastion import Endpoint, ModelGroup, Router, RouterOptions, ScriptedModel
from bastion.agents import AgentEvent
from bastion.resilience.clock import FakeClock
from bastion.types import Message, ToolCall


def build_router(
    models: dict[str, ScriptedModel], groups: dict[str, ModelGroup] | None = None
) -> Router:
    endpoints = [
        (Endpoint(id=name, provider="scripted", model=m.model), m) for name, m in models.items()
    ]
    return Router(
        endpoints,
        groups or {"chat": ModelGroup.of(*models)},
        options=RouterOptions(health_checks=False),
        clock=FakeClock(),
        rng=random.Random(7),
    )


def call(name: str, arguments: str = "{}", id: str | None = None) -> ToolCall:
    return ToolCall(id or f"call_{uuid.uuid4().hex[:6]}", name, arguments)


async def collect(events: AsyncIterator[AgentEvent]) -> list[AgentEvent]:
    return [event async for event in events]


def roles(messages: Sequence[Message]) -> list[str]:
    return [m.role for m in messages]
