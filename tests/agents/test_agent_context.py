"""The runtime context picks the model (per step), writes the instructions and reaches
the tools."""

from __future__ import annotations

import asyncio

import pytest
from agent_support import build_router, call, collect

from bastion import Reply, RuntimeContext, ScriptedModel
from bastion.agents import (
    Agent,
    Error,
    Finished,
    MissingContext,
    ModelSwitched,
    ToolContext,
    tool,
)
from bastion.agents.configure import ContextTemplate
from bastion.memory import Memory, SqliteStore


def pick_by_tier(ctx: RuntimeContext) -> str:
    return "big" if ctx.get("tier") == "gold" else "small"


async def pick_by_tier_async(ctx: RuntimeContext) -> str:
    await asyncio.sleep(0)
    return pick_by_tier(ctx)


def two_models() -> tuple[ScriptedModel, ScriptedModel, dict[str, ScriptedModel]]:
    big = ScriptedModel(default="from big", model="m-big")
    small = ScriptedModel(default="from small", model="m-small")
    return big, small, {"big": big, "small": small}


async def test_a_sync_selector_chooses_the_model_from_the_context():
    big, small, models = two_models()
    agent = Agent("a", "Be brief.", pick_by_tier, router=build_router(models))

    gold = await agent.generate("hi", context={"tier": "gold"})
    free = await agent.generate("hi", context=RuntimeContext(tier="free"))

    assert (gold.text, gold.endpoints) == ("from big", ("big",))
    assert (free.text, free.endpoints) == ("from small", ("small",))
    assert (len(big.requests), len(small.requests)) == (1, 1)


async def test_an_async_selector_chooses_the_model_from_the_context():
    _, _, models = two_models()
    agent = Agent("a", "Be brief.", pick_by_tier_async, router=build_router(models))
    result = await agent.generate("hi", context={"tier": "gold"})
    assert result.endpoints == ("big",)


async def test_the_selector_is_asked_again_on_every_step():
    asked: list[int] = []

    def alternate(ctx: RuntimeContext) -> str:
        asked.append(1)
        return "big" if len(asked) == 1 else "small"

    big = ScriptedModel([Reply(tool_calls=(call("ping"),))])
    small = ScriptedModel(["done"])

    @tool
    def ping() -> str:
        """Ping."""
        return "pong"

    agent = Agent(
        "a", "x", alternate, router=build_router({"big": big, "small": small}), tools=[ping]
    )
    events = await collect(agent.stream("go"))
    assert len(asked) == 2
    assert ModelSwitched("big", "small", 2) in events
    final = events[-1]
    assert isinstance(final, Finished)
    assert final.result.endpoints == ("big", "small")


async def test_instructions_as_a_sync_function_of_the_context():
    model = ScriptedModel(default="ok")
    agent = Agent(
        "a",
        lambda ctx: f"You serve {ctx['tenant']}.",
        "only",
        router=build_router({"only": model}),
    )
    await agent.generate("hi", context={"tenant": "acme"})
    system = model.requests[0].messages[0]
    assert (system.role, system.content) == ("system", "You serve acme.")


async def test_instructions_as_an_async_function_of_the_context():
    model = ScriptedModel(default="ok")

    async def instructions(ctx: RuntimeContext) -> str:
        await asyncio.sleep(0)
        return f"Answer in {ctx['language']}."

    agent = Agent("a", instructions, "only", router=build_router({"only": model}))
    await agent.generate("hi", context={"language": "French"})
    assert model.requests[0].messages[0].content == "Answer in French."


async def test_empty_instructions_send_no_system_message():
    model = ScriptedModel(default="ok")
    agent = Agent("a", "", "only", router=build_router({"only": model}))
    await agent.generate("hi")
    assert [m.role for m in model.requests[0].messages] == ["user"]


async def test_the_context_reaches_tools_as_runtime_context_and_tool_context():
    seen: dict[str, object] = {}

    @tool
    def whoami(ctx: RuntimeContext) -> str:
        """Who is asking."""
        seen["runtime"] = ctx["user"]
        return str(ctx["user"])

    @tool
    async def audit(note: str, tc: ToolContext) -> str:
        """Write an audit note.

        Args:
            note: What to write down.
        """
        seen["tool"] = (tc.context["user"], tc.tool, tc.agent, tc.thread_id)
        return "noted"

    model = ScriptedModel(
        [
            Reply(tool_calls=(call("whoami"), call("audit", '{"note": "hi"}'))),
            "You are ada.",
        ]
    )
    agent = Agent("desk", "x", "only", router=build_router({"only": model}), tools=[whoami, audit])
    result = await agent.generate("who am I?", context={"user": "ada"})

    assert result.text == "You are ada."
    assert seen == {"runtime": "ada", "tool": ("ada", "audit", "desk", None)}
    assert "ctx" not in whoami.parameters.get("properties", {})
    assert list(audit.parameters["properties"]) == ["note"]


async def test_instructions_that_need_a_context_value_refuse_a_run_without_it():
    model = ScriptedModel(default="hello")
    async with SqliteStore(":memory:") as store:
        memory = Memory(store)
        agent = Agent(
            "support",
            ContextTemplate("You help {tier} customers."),
            model,
            memory=memory,
        )

        with pytest.raises(MissingContext) as caught:
            await agent.generate("hi", thread_id="t", resource_id="alice", run_id="r1")
        events = await collect(agent.stream("hi", run_id="r2"))
        answered = await agent.generate("hi", context={"tier": "gold"})

        assert caught.value.keys == ("tier",) and "agent 'support'" in str(caught.value)
        assert [type(e).__name__ for e in events] == ["Error"]
        assert isinstance(events[0], Error) and events[0].kind == "missing_context"
        # Refused before it started: no model call, no thread, no run on record.
        assert (await store.get_run("r1"), await store.get_run("r2")) == (None, None)
        assert await store.get_thread("t") is None
        assert len(model.requests) == 1
        assert model.requests[0].messages[0].content == "You help gold customers."
        assert answered.text == "hello"
