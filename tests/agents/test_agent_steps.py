"""A run is a sequence of recorded steps, bounded by the step limit, and its state can
be rebuilt from the records alone."""

from __future__ import annotations

import pytest
from agent_support import build_router, call, collect

from bastion import Fail, Reply, ScriptedModel, Usage
from bastion.agents import (
    Agent,
    AgentOptions,
    Error,
    StepFinished,
    StepLimitReached,
    tool,
)
from bastion.agents.loop import replay
from bastion.memory.sqlite import SqliteStore


@tool
def inc(n: int) -> int:
    """Add one.

    Args:
        n: The number.
    """
    return n + 1


def looping_agent(max_steps: int, **options) -> tuple[Agent, ScriptedModel]:
    model = ScriptedModel(default=Reply(tool_calls=(call("inc", '{"n": 1}', id="c"),)))
    agent = Agent(
        "loopy", "x", "only", router=build_router({"only": model}), tools=[inc],
        options=AgentOptions(max_steps=max_steps, **options),
    )  # fmt: skip
    return agent, model


async def test_a_model_that_always_calls_tools_hits_the_step_limit_by_name():
    agent, model = looping_agent(3)
    with pytest.raises(StepLimitReached) as info:
        await agent.generate("count")
    error = info.value
    assert "max_steps=3" in str(error)
    assert "3 model calls and 3 tool calls" in str(error)
    assert (error.limit, error.model_steps, error.tool_calls) == (3, 3, 3)
    assert len(model.requests) == 3


async def test_in_a_stream_the_step_limit_is_an_error_event_after_the_steps():
    agent, _ = looping_agent(2)
    events = await collect(agent.stream("count"))
    assert len([e for e in events if isinstance(e, StepFinished)]) == 4
    last = events[-1]
    assert isinstance(last, Error)
    assert last.kind == "step_limit"
    assert "max_steps=2" in last.message
    assert isinstance(last.exception, StepLimitReached)


def test_options_are_checked_when_built():
    with pytest.raises(ValueError, match="max_steps"):
        AgentOptions(max_steps=0)


async def test_usage_is_summed_over_model_steps():
    model = ScriptedModel([Reply(tool_calls=(call("inc", '{"n": 1}'),)), "two words"])
    agent = Agent("a", "x", "only", router=build_router({"only": model}), tools=[inc])
    result = await agent.generate("count please")
    per_step = [s.output["usage"] for s in result.steps if s.kind == "model"]
    assert result.usage == Usage(
        sum(u["prompt_tokens"] for u in per_step), sum(u["completion_tokens"] for u in per_step)
    )
    assert result.usage.completion_tokens == 2


@pytest.fixture
async def store():
    async with SqliteStore(":memory:") as s:
        yield s


async def test_every_step_is_recorded_with_its_inputs_and_outputs(store):
    model = ScriptedModel(
        [Reply(tool_calls=(call("inc", '{"n": 41}', id="c1"),)), "It is 42."], model="m-1"
    )
    agent = Agent(
        "counter", "You count.", "only", router=build_router({"only": model}), tools=[inc],
        options=AgentOptions(run_store=store),
    )  # fmt: skip
    result = await agent.generate("What is 41 + 1?", run_id="run-1")

    run = await store.get_run("run-1")
    assert run is not None
    assert (run.agent, run.status, run.error) == ("counter", "ok", None)
    assert run.ended_at is not None
    assert [(s.index, s.kind, s.name, s.status) for s in run.steps] == [
        (0, "model", "only", "ok"),
        (1, "tool", "inc", "ok"),
        (2, "model", "only", "ok"),
    ]
    first, tool_step, last = run.steps
    assert first.input["messages"] == [
        {"role": "system", "content": "You count."},
        {"role": "user", "content": "What is 41 + 1?"},
    ]
    assert first.output["message"]["tool_calls"] == [
        {"id": "c1", "name": "inc", "arguments": '{"n": 41}'}
    ]
    assert (first.output["endpoint"], first.output["model"]) == ("only", "m-1")
    assert tool_step.input == {
        "call_id": "c1",
        "arguments": '{"n": 41}',
        "idempotency_key": "run-1:0:0",
        "model_step": 0,
    }
    assert tool_step.output == {"result": "42"}
    assert last.input["messages"] == []  # the tool result is in the tool step's record
    assert last.output["message"] == {"role": "assistant", "content": "It is 42."}
    assert list(run.steps) == list(result.steps)


async def test_the_run_state_is_rebuilt_from_its_step_records(store):
    model = ScriptedModel(
        [
            Reply(tool_calls=(call("inc", '{"n": "x"}', id="bad"),)),
            Reply(tool_calls=(call("inc", '{"n": 1}', id="good"),)),
            "2",
        ]
    )
    agent = Agent(
        "a", "sys", "only", router=build_router({"only": model}), tools=[inc],
        options=AgentOptions(run_store=store),
    )  # fmt: skip
    result = await agent.generate("count", run_id="r")
    run = await store.get_run("r")
    assert run is not None

    state = replay("r", run.steps)
    assert state.messages == [*model.requests[-1].messages, result.messages[-1]]
    assert state.new_messages == result.messages
    assert (state.model_steps, state.tool_calls, state.invalid_rounds) == (3, 2, 1)
    assert state.usage == result.usage
    assert state.step == 5


async def test_a_failed_run_is_recorded_with_its_error_and_failed_step(store):
    model = ScriptedModel([Fail("invalid_request", "bad request", status=400)])
    agent = Agent(
        "a", "x", "only", router=build_router({"only": model}),
        options=AgentOptions(run_store=store),
    )  # fmt: skip
    events = await collect(agent.stream("hi", run_id="r-err"))
    assert isinstance(events[-1], Error)
    assert events[-1].kind == "invalid_request"
    run = await store.get_run("r-err")
    assert run is not None
    assert run.status == "error"
    assert "bad request" in (run.error or "")
    assert [(s.kind, s.status) for s in run.steps] == [("model", "error")]
    assert run.steps[0].output["kind"] == "invalid_request"


async def test_a_step_limit_run_is_recorded_as_an_error(store):
    agent, _ = looping_agent(1, run_store=store)
    with pytest.raises(StepLimitReached):
        await agent.generate("count", run_id="r-lim")
    run = await store.get_run("r-lim")
    assert run is not None
    assert run.status == "error"
    assert "StepLimitReached" in (run.error or "")
    assert [s.kind for s in run.steps] == ["model", "tool"]
