"""A group's degraded answer is served when nothing can be tried at all (every target
isolated by hand), streamed and not, exactly as when every attempt failed."""

from __future__ import annotations

import pytest
from router_support import build

from bastion import Degraded, ModelGroup, NoTargetAvailable, ScriptedModel, TextDelta, chat
from bastion.observability.events import DegradedAnswer, RequestFinished


def isolated_router(events: list | None = None):
    group = ModelGroup.of("primary", "backup", degraded=Degraded(message="Busy, retry soon."))
    primary, backup = ScriptedModel(default="p"), ScriptedModel(default="b")
    router = build({"primary": primary, "backup": backup}, {"chat": group}, events=events)
    router.isolate("primary")
    router.isolate("backup")
    return router, (primary, backup)


async def test_every_target_isolated_serves_the_degraded_answer():
    events: list = []
    router, models = isolated_router(events)
    answer = await router.complete(chat("x"))
    assert (answer.text, answer.degraded, answer.attempts) == ("Busy, retry soon.", True, ())
    assert all(m.requests == [] for m in models)
    assert any(isinstance(e, DegradedAnswer) for e in events)
    finished = [e for e in events if isinstance(e, RequestFinished)]
    assert [(f.endpoint, f.ok) for f in finished] == [("degraded", True)]


async def test_every_target_isolated_streams_the_degraded_answer():
    router, models = isolated_router()
    stream = router.stream(chat("x"))
    events = [e async for e in stream]
    assert "".join(e.text for e in events if isinstance(e, TextDelta)) == "Busy, retry soon."
    assert events[-1].finish_reason == "stop"
    assert stream.degraded and stream.endpoint == "degraded"
    assert all(m.requests == [] for m in models)


async def test_every_target_isolated_without_a_degraded_answer_is_still_a_clear_error():
    router = build({"primary": ScriptedModel(default="p")})
    router.isolate("primary")
    with pytest.raises(NoTargetAvailable):
        await router.complete(chat("x"))
    with pytest.raises(NoTargetAvailable):
        await anext(router.stream(chat("x")))
