"""Failover inside an agent run: the model spec is resolved on every step, so a primary
that fails between tool steps hands the rest of the run, conversation and tool results
intact, to the fallback."""

from __future__ import annotations

from agent_support import build_router, call, collect

from bastion import Fail, FailoverError, Reply, ScriptedModel
from bastion.agents import (
    Agent,
    Error,
    Finished,
    ModelSwitched,
    StepFinished,
    TextDelta,
    ToolCallStarted,
    ToolResult,
    tool,
)

# The primary gets no retry of its own: a failure moves straight to the fallback.
SPEC = [{"model": "primary", "retries": 0}, "fallback"]


@tool
def order_status(order_id: int) -> dict[str, object]:
    """The shipping status of an order.

    Args:
        order_id: The order's number.
    """
    return {"order": order_id, "status": "shipped"}


def models() -> tuple[ScriptedModel, ScriptedModel]:
    lookup = call("order_status", '{"order_id": 42}', id="call_1")
    primary = ScriptedModel(
        [Reply(tool_calls=(lookup,)), Fail("unavailable", "primary is down")], model="big"
    )
    fallback = ScriptedModel(["Order 42 has shipped."], model="small")
    return primary, fallback


def agent_over(primary: ScriptedModel, fallback: ScriptedModel) -> Agent:
    router = build_router({"primary": primary, "fallback": fallback})
    return Agent("support", "You track orders.", SPEC, router=router, tools=[order_status])


async def test_fallback_finishes_the_run_with_the_tool_call_and_result_intact():
    primary, fallback = models()
    result = await agent_over(primary, fallback).generate("Where is order 42?")

    assert result.text == "Order 42 has shipped."
    assert result.endpoints == ("primary", "fallback")
    assert result.models == ("big", "small")
    sent = fallback.requests[0].messages
    assert [m.role for m in sent] == ["system", "user", "assistant", "tool"]
    assert sent[2].tool_calls == (call("order_status", '{"order_id": 42}', id="call_1"),)
    assert sent[3].tool_call_id == "call_1"
    assert sent[3].content == '{"order":42,"status":"shipped"}'
    assert fallback.requests[0].tools[0].name == "order_status"


async def test_the_failed_attempt_on_the_primary_is_in_the_step_record():
    primary, fallback = models()
    result = await agent_over(primary, fallback).generate("Where is order 42?")

    last = result.steps[-1]
    assert (last.kind, last.output["endpoint"]) == ("model", "fallback")
    assert last.output["failed_attempts"] == [
        {"endpoint": "primary", "kind": "unavailable", "status": None}
    ]


async def test_stream_announces_the_switch_to_the_fallback_before_its_text():
    primary, fallback = models()
    events = await collect(agent_over(primary, fallback).stream("Where is order 42?"))

    kinds = [type(e) for e in events]
    assert kinds == [
        StepFinished,  # model step 0 on the primary: a tool call
        ToolCallStarted,
        ToolResult,
        StepFinished,  # tool step 1
        ModelSwitched,
        TextDelta,
        TextDelta,
        TextDelta,
        StepFinished,  # model step 2 on the fallback
        Finished,
    ]
    assert events[4] == ModelSwitched("primary", "fallback", 2)
    assert "".join(e.text for e in events if isinstance(e, TextDelta)) == "Order 42 has shipped."
    shipped = '{"order":42,"status":"shipped"}'
    assert events[2] == ToolResult("call_1", "order_status", shipped, None, 1)
    steps = [e for e in events if isinstance(e, StepFinished)]
    assert [(s.index, s.kind, s.endpoint) for s in steps] == [
        (0, "model", "primary"),
        (1, "tool", ""),
        (2, "model", "fallback"),
    ]
    final = events[-1]
    assert isinstance(final, Finished)
    assert final.result.endpoints == ("primary", "fallback")


async def test_no_switch_event_while_the_same_endpoint_serves_every_step():
    primary = ScriptedModel(
        [Reply(tool_calls=(call("order_status", '{"order_id": 1}'),)), "Shipped."]
    )
    events = await collect(agent_over(primary, ScriptedModel()).stream("Order 1?"))
    assert not [e for e in events if isinstance(e, ModelSwitched)]
    assert isinstance(events[-1], Finished)


async def test_when_every_model_fails_generate_raises_the_routers_error():
    primary = ScriptedModel([Fail("unavailable")])
    fallback = ScriptedModel([Fail("unavailable"), Fail("unavailable")])
    agent = agent_over(primary, fallback)
    try:
        await agent.generate("hello")
    except FailoverError as exc:
        assert [a.endpoint for a in exc.attempts] == ["primary", "fallback", "fallback"]
    else:
        raise AssertionError("expected a FailoverError")


async def test_when_every_model_fails_the_stream_ends_with_an_error_event():
    primary = ScriptedModel([Fail("unavailable")])
    fallback = ScriptedModel([Fail("unavailable"), Fail("unavailable")])
    events = await collect(agent_over(primary, fallback).stream("hello"))
    assert len(events) == 1
    error = events[0]
    assert isinstance(error, Error)
    assert error.kind == "unavailable"
    assert "primary" in error.message and "fallback" in error.message


async def test_a_stream_cut_mid_answer_is_continued_by_the_fallback_as_one_text():
    primary = ScriptedModel([Fail("unavailable", after_chars=12, partial="Order 42 has shipped.")])
    fallback = ScriptedModel(default="Order 42 has shipped.")
    events = await collect(agent_over(primary, fallback).stream("Where is order 42?"))
    text = "".join(e.text for e in events if isinstance(e, TextDelta))
    assert text == "Order 42 has shipped."
    final = events[-1]
    assert isinstance(final, Finished)
    assert final.result.text == "Order 42 has shipped."
    assert final.result.endpoints == ("fallback",)


async def test_a_stream_cut_with_nobody_to_continue_ends_in_an_error_after_its_text():
    only = ScriptedModel([Fail("unavailable", after_chars=5, partial="Hello world")])
    agent = Agent("a", "x", "only", router=build_router({"only": only}))
    events = await collect(agent.stream("hi"))
    assert [e.text for e in events if isinstance(e, TextDelta)] == ["Hello"]
    last = events[-1]
    assert isinstance(last, Error)
    assert last.kind == "unavailable"
    assert "broke after 5 characters" in last.message
