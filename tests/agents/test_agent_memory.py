"""With memory and a thread, a run starts from the thread's history and commits its new
messages at the end of the turn — only when it succeeded."""

from __future__ import annotations

import asyncio
from contextlib import aclosing

import pytest
from agent_support import build_router, call, collect, roles

from bastion import Fail, Reply, ScriptedModel
from bastion.agents import (
    Agent,
    AgentOptions,
    Error,
    Finished,
    StepLimitReached,
    TextDelta,
    block,
    tool,
)
from bastion.memory import Memory
from bastion.memory.sqlite import SqliteStore


@tool
def lookup(key: str) -> str:
    """Look a key up.

    Args:
        key: The key.
    """
    return f"value of {key}"


@pytest.fixture
async def memory():
    async with SqliteStore(":memory:") as store:
        yield Memory(store, last_n=20)


def agent_with(model: ScriptedModel, memory: Memory, **options) -> Agent:
    return Agent(
        "a", "Be kind.", "only", router=build_router({"only": model}), tools=[lookup],
        memory=memory, options=AgentOptions(**options),
    )  # fmt: skip


async def test_the_second_turn_sees_the_first_and_the_thread_keeps_every_new_message(memory):
    model = ScriptedModel(
        [Reply(tool_calls=(call("lookup", '{"key": "a"}', id="c1"),)), "A is set.", "Yes."]
    )
    agent = agent_with(model, memory)
    first = await agent.generate("Set a?", thread_id="t1", resource_id="u1")
    second = await agent.generate("Sure?", thread_id="t1", resource_id="u1")

    assert roles(first.messages) == ["user", "assistant", "tool", "assistant"]
    sent = model.requests[-1].messages
    assert roles(sent) == ["system", "user", "assistant", "tool", "assistant", "user"]
    assert sent[1].content == "Set a?" and sent[-1].content == "Sure?"
    stored = await memory.store.messages("t1")
    assert stored == [*first.messages, *second.messages]
    thread = await memory.store.get_thread("t1")
    assert thread is not None and thread.version == 2  # one append per turn


async def test_the_memory_store_records_the_runs_too(memory):
    agent = agent_with(ScriptedModel(["hi"]), memory)
    await agent.generate("hello", thread_id="t1", resource_id="u1", run_id="r1")
    run = await memory.store.get_run("r1")
    assert run is not None
    assert (run.thread_id, run.resource_id, run.status) == ("t1", "u1", "ok")


async def test_a_failed_run_commits_nothing(memory):
    model = ScriptedModel(default=Reply(tool_calls=(call("lookup", '{"key": "a"}'),)))
    agent = agent_with(model, memory, max_steps=2)
    with pytest.raises(StepLimitReached):
        await agent.generate("loop", thread_id="t1", resource_id="u1")
    assert await memory.store.messages("t1") == []


async def test_a_refused_run_commits_nothing_and_notes_the_refusal(memory):
    agent = agent_with(
        ScriptedModel(["never"]), memory, input_processors=(block("secret", "no secrets"),)
    )
    result = await agent.generate("my secret", thread_id="t1", resource_id="u1", run_id="r")
    assert result.refused == "no secrets"
    assert await memory.store.messages("t1") == []
    run = await memory.store.get_run("r")
    assert run is not None
    assert (run.status, run.error) == ("ok", "refused: no secrets")


async def test_a_streamed_run_commits_before_finishing(memory):
    agent = agent_with(ScriptedModel(["streamed answer"]), memory)
    events = await collect(agent.stream("hi", thread_id="t1", resource_id="u1"))
    assert isinstance(events[-1], Finished)
    assert [m.content for m in await memory.store.messages("t1")] == ["hi", "streamed answer"]


async def test_a_streamed_failure_commits_nothing(memory):
    agent = agent_with(ScriptedModel([Fail("auth", status=401)]), memory)
    events = await collect(agent.stream("hi", thread_id="t1", resource_id="u1"))
    assert isinstance(events[-1], Error)
    assert await memory.store.messages("t1") == []


async def test_a_thread_needs_its_resource(memory):
    agent = agent_with(ScriptedModel(["x"]), memory)
    with pytest.raises(ValueError, match="resource_id"):
        await agent.generate("hi", thread_id="t1")


async def test_without_a_thread_memory_is_not_used(memory):
    agent = agent_with(ScriptedModel(["x"]), memory)
    await agent.generate("hi", resource_id="u1")
    assert await memory.threads("u1") == []


async def test_a_stream_closed_early_releases_the_thread_and_records_the_run(memory):
    agent = agent_with(ScriptedModel(["a long answer", "next"]), memory)
    events = agent.stream("hi", thread_id="t1", resource_id="u1", run_id="r-closed")
    async with aclosing(events):
        async for event in events:
            if isinstance(event, TextDelta):
                break
    run = await memory.store.get_run("r-closed")
    assert run is not None
    assert (run.status, run.error) == ("error", "cancelled")
    assert await memory.store.messages("t1") == []
    # The lease is free: the next turn on the thread goes ahead.
    result = await agent.generate("again", thread_id="t1", resource_id="u1")
    assert result.text == "next"


async def test_two_runs_on_one_thread_take_turns_and_the_second_sees_the_first(memory):
    model = ScriptedModel(["first answer", "second answer"])
    agent = agent_with(model, memory)
    await asyncio.gather(
        agent.generate("one", thread_id="t1", resource_id="u1"),
        agent.generate("two", thread_id="t1", resource_id="u1"),
    )
    second = [m.content for m in model.requests[1].messages if m.role != "system"]
    assert second[:2] in (["one", "first answer"], ["two", "first answer"])
    assert len(await memory.store.messages("t1")) == 4
