"""A router over scripted models on a fake clock, for the routing tests."""

from __future__ import annotations

import random

from bastion import Endpoint, ModelGroup, Router, RouterOptions, ScriptedModel
from bastion.resilience.clock import FakeClock


def build(
    models: dict[str, ScriptedModel],
    groups: dict[str, ModelGroup] | None = None,
    *,
    windows: dict[str, int] | None = None,
    clock: FakeClock | None = None,
    options: RouterOptions | None = None,
    events: list | None = None,
) -> Router:
    windows = windows or {}
    endpoints = [
        (
            Endpoint(id=name, provider="scripted", model=m.model, context_window=windows.get(name)),
            m,
        )
        for name, m in models.items()
    ]
    return Router(
        endpoints,
        groups or {"chat": ModelGroup.of(*models)},
        options=options or RouterOptions(health_checks=False),
        default_model="chat",
        clock=clock or FakeClock(),
        rng=random.Random(7),
        hooks=[events.append] if events is not None else (),
    )
