"""What an agent's `model=` may be: a Router, a single model, or a spec with `router=`."""

from __future__ import annotations

import random

import pytest
from agent_support import build_router

from bastion import (
    Agent,
    Endpoint,
    Fail,
    ModelGroup,
    Router,
    RouterOptions,
    ScriptedModel,
    TextDelta,
    chat,
)
from bastion.resilience.clock import FakeClock


async def test_an_agent_takes_a_router_as_its_model_and_fails_over_through_it():
    primary = ScriptedModel([Fail("connection")], model="m-primary")
    backup = ScriptedModel(default="answer from backup", model="m-backup")
    router = build_router({"primary": primary, "backup": backup})
    router.default_model = "chat"
    agent = Agent("helper", "Be brief.", model=router)
    result = await agent.generate("hi")
    assert result.text == "answer from backup"
    assert agent.router is router


async def test_an_agent_takes_a_single_model():
    agent = Agent("helper", "Be brief.", model=ScriptedModel(default="just one model"))
    assert (await agent.generate("hi")).text == "just one model"


def test_a_spec_without_a_router_is_a_clear_error():
    with pytest.raises(ValueError, match=r"model='chat' is a spec; give router="):
        Agent("helper", "Be brief.", model="chat")


def test_a_router_without_a_default_model_is_a_clear_error():
    router = build_router({"a": ScriptedModel(default="x")})
    with pytest.raises(ValueError, match="no default_model"):
        Agent("helper", "Be brief.", model=router)


def nested(inner: Router, other: ScriptedModel) -> Router:
    return Router(
        [
            (Endpoint(id="inner", provider="router", model="inner"), inner),
            (Endpoint(id="other", provider="scripted", model="other"), other),
        ],
        {"chat": ModelGroup.of("inner", "other")},
        options=RouterOptions(health_checks=False),
        default_model="chat",
        clock=FakeClock(),
        rng=random.Random(2),
    )


async def test_a_router_is_a_model_inside_another_router():
    inner = build_router({"a": ScriptedModel([Fail("connection")]), "b": ScriptedModel(["b!"])})
    inner.default_model = "chat"
    outer = nested(inner, ScriptedModel(default="other"))
    assert (await outer.complete(chat("x"))).text == "b!"

    dead = build_router({"a": ScriptedModel(default=Fail("auth", status=401))})
    dead.default_model = "chat"
    outer = nested(dead, ScriptedModel(default="other"))
    answer = await outer.complete(chat("x"))
    assert (answer.endpoint, answer.text) == ("other", "other")


async def test_an_inner_routers_broken_stream_is_continued_by_the_outer_one():
    partial = "The inner router's stream breaks here"
    inner = build_router(
        {"a": ScriptedModel([Fail("connection", after_chars=len(partial), partial=partial)])}
    )
    inner.default_model = "chat"
    other = ScriptedModel(default=partial + " and the outer one carries on.")
    outer = nested(inner, other)
    stream = outer.stream(chat("x"))
    text = "".join([e.text async for e in stream if isinstance(e, TextDelta)])
    assert text == partial + " and the outer one carries on."
    assert stream.endpoint == "other"
