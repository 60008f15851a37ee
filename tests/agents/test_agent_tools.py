"""@tool: schemas from type hints and docstrings, and every way a call can go wrong
going back to the model instead of crashing the run."""

from __future__ import annotations

import asyncio
import threading
from typing import Literal

import pytest
from agent_support import build_router, call
from pydantic import BaseModel

from bastion import Reply, ScriptedModel
from bastion.agents import Agent, AgentOptions, ToolArgumentsInvalid, ToolContext, ToolError, tool
from bastion.types import ChatRequest


class Address(BaseModel):
    city: str
    zip: str | None = None


@tool(name="ship", description="Ship an order.", timeout=5.0, retries=1)
async def ship_order(order_id: int, address: Address, express: bool = False) -> str:
    """Ignored: the description is given."""
    return "ok"


def google(city: str, days: int = 3, unit: Literal["c", "f"] = "c") -> str:
    """The weather forecast for a city.

    Looks it up in the forecast service.

    Args:
        city: The city's name,
            as people write it.
        days (int): How many days ahead.
        unit: Celsius or Fahrenheit.

    Returns:
        The forecast as text.
    """
    return city


def numpy_style(query: str, limit: int = 10) -> list[str]:
    """Search the catalogue.

    Parameters
    ----------
    query : str
        What to look for.
    limit : int
        At most this many hits.
    """
    return []


def test_schema_comes_from_type_hints_and_a_google_docstring():
    t = tool(google)
    assert t.name == "google"
    assert t.description == (
        "The weather forecast for a city.\n\nLooks it up in the forecast service."
    )
    assert t.parameters["required"] == ["city"]
    props = t.parameters["properties"]
    assert props["city"] == {
        "type": "string",
        "description": "The city's name, as people write it.",
    }
    assert props["days"] == {"type": "integer", "default": 3, "description": "How many days ahead."}
    assert props["unit"]["enum"] == ["c", "f"]
    assert props["unit"]["description"] == "Celsius or Fahrenheit."


def test_schema_reads_a_numpy_docstring():
    t = tool(numpy_style)
    assert t.description == "Search the catalogue."
    assert t.parameters["properties"]["query"]["description"] == "What to look for."
    assert t.parameters["properties"]["limit"]["description"] == "At most this many hits."


def test_options_name_description_timeout_retries_and_nested_models():
    assert (ship_order.name, ship_order.description) == ("ship", "Ship an order.")
    assert (ship_order.timeout, ship_order.retries) == (5.0, 1)
    assert ship_order.parameters["required"] == ["order_id", "address"]
    assert "$defs" in ship_order.parameters  # the nested model, by reference
    assert ship_order.spec.name == "ship"


def test_a_decorated_function_stays_callable():
    @tool
    def add(a: int, b: int) -> int:
        """Add."""
        return a + b

    assert add(2, 3) == 5


def test_functions_that_cannot_be_tools_are_refused_clearly():
    def splat(*args: int) -> int:
        return 0

    with pytest.raises(TypeError, match="named parameter"):
        tool(splat)
    with pytest.raises(ValueError, match="timeout"):
        tool(timeout=0)(google)


def agent_with(script: list, tools: list, **options) -> tuple[Agent, ScriptedModel]:
    model = ScriptedModel(script)
    agent = Agent(
        "a", "x", "only", router=build_router({"only": model}), tools=tools,
        options=AgentOptions(**options),
    )  # fmt: skip
    return agent, model


def tool_messages(request: ChatRequest) -> list[str]:
    return [m.content or "" for m in request.messages if m.role == "tool"]


@tool
def forecast(city: str, days: int) -> str:
    """A forecast.

    Args:
        city: The city.
        days: How many days.
    """
    return f"{city}: sunny for {days} days"


async def test_invalid_arguments_go_back_naming_the_field_and_good_ones_then_succeed():
    agent, model = agent_with(
        [
            Reply(tool_calls=(call("forecast", '{"city": "Oslo", "days": "many"}'),)),
            Reply(tool_calls=(call("forecast", '{"city": "Oslo", "days": 2}'),)),
            "Sunny.",
        ],
        [forecast],
    )
    result = await agent.generate("weather?")

    assert result.text == "Sunny."
    first_error = tool_messages(model.requests[1])[0]
    assert "invalid arguments for tool 'forecast'" in first_error
    assert "field 'days'" in first_error
    assert tool_messages(model.requests[2])[-1] == "Oslo: sunny for 2 days"
    statuses = [(s.kind, s.status) for s in result.steps]
    assert statuses == [
        ("model", "ok"),
        ("tool", "error"),
        ("model", "ok"),
        ("tool", "ok"),
        ("model", "ok"),
    ]
    assert result.steps[1].output["invalid_arguments"] is True


async def test_missing_fields_and_bad_json_are_named_too():
    agent, model = agent_with(
        [
            Reply(tool_calls=(call("forecast", '{"city": "Oslo"}'), call("forecast", "{oops"))),
            "Sorry.",
        ],
        [forecast],
    )
    await agent.generate("weather?")
    missing, bad_json = tool_messages(model.requests[1])
    assert "field 'days': Field required" in missing
    assert "not valid JSON" in bad_json


async def test_an_unknown_tool_goes_back_to_the_model_with_the_tools_it_has():
    agent, model = agent_with([Reply(tool_calls=(call("nope"),)), "ok"], [forecast])
    await agent.generate("x")
    assert tool_messages(model.requests[1]) == [
        "unknown tool 'nope'; the available tools are: forecast"
    ]


async def test_invalid_argument_rounds_are_bounded():
    bad = Reply(tool_calls=(call("forecast", "{}"),))
    agent, model = agent_with([bad, bad, bad, "never"], [forecast], max_invalid_tool_rounds=2)
    with pytest.raises(ToolArgumentsInvalid, match="more than 2 rounds") as info:
        await agent.generate("x")
    assert info.value.limit == 2
    assert "field 'city'" in info.value.last_error
    assert len(model.requests) == 3  # two corrections allowed, the third bad round ends it


async def test_a_tool_that_times_out_sends_the_timeout_back():
    @tool(timeout=0.02)
    async def slow() -> str:
        """Slow."""
        await asyncio.sleep(10)
        return "late"

    agent, model = agent_with([Reply(tool_calls=(call("slow"),)), "gave up"], [slow])
    result = await agent.generate("x")
    assert result.text == "gave up"
    assert tool_messages(model.requests[1]) == ["tool 'slow' timed out after 0.02s"]
    assert result.steps[1].status == "error"


async def test_a_sync_tool_runs_in_a_thread_and_its_timeout_holds():
    release = threading.Event()
    loop_thread = threading.get_ident()
    threads: list[int] = []

    @tool(timeout=0.02)
    def blocking() -> str:
        """Blocks."""
        threads.append(threading.get_ident())
        release.wait(5)
        return "late"

    agent, model = agent_with([Reply(tool_calls=(call("blocking"),)), "moved on"], [blocking])
    try:
        result = await agent.generate("x")
    finally:
        release.set()
    assert result.text == "moved on"
    assert threads and threads[0] != loop_thread
    assert tool_messages(model.requests[1]) == ["tool 'blocking' timed out after 0.02s"]


async def test_a_tool_exception_sends_its_text_without_a_traceback():
    @tool
    def broken(x: int) -> str:
        """Broken."""
        raise ValueError(f"no such item: {x}")

    @tool
    def refuses() -> str:
        """Refuses."""
        raise ToolError("the warehouse is closed today")

    agent, model = agent_with(
        [Reply(tool_calls=(call("broken", '{"x": 7}'), call("refuses"))), "sorry"],
        [broken, refuses],
    )
    result = await agent.generate("x")
    failed, refused = tool_messages(model.requests[1])
    assert failed == "tool 'broken' failed: ValueError: no such item: 7"
    assert refused == "the warehouse is closed today"
    assert "Traceback" not in failed
    assert result.steps[1].output == {"error": failed}


async def test_retries_rerun_a_failing_tool_with_the_same_idempotency_key():
    seen: list[tuple[str, int]] = []

    @tool(retries=2)
    def flaky(tc: ToolContext) -> str:
        """Flaky."""
        seen.append((tc.idempotency_key, tc.attempt))
        if tc.attempt < 2:
            raise ConnectionError("reset")
        return "done"

    agent, model = agent_with([Reply(tool_calls=(call("flaky"),)), "ok"], [flaky])
    result = await agent.generate("x", run_id="r1")
    assert seen == [("r1:0:0", 0), ("r1:0:0", 1), ("r1:0:0", 2)]
    assert tool_messages(model.requests[1]) == ["done"]
    assert result.steps[1].input["idempotency_key"] == "r1:0:0"


async def test_idempotency_keys_are_unique_per_call_and_name_run_step_and_position():
    keys: list[str] = []

    @tool
    async def charge(amount: int, tc: ToolContext) -> str:
        """Charge a card.

        Args:
            amount: Cents.
        """
        keys.append(tc.idempotency_key)
        return "charged"

    agent, _ = agent_with(
        [
            Reply(tool_calls=(call("charge", '{"amount": 1}'), call("charge", '{"amount": 2}'))),
            Reply(tool_calls=(call("charge", '{"amount": 3}'),)),
            "done",
        ],
        [charge],
    )
    await agent.generate("pay", run_id="run-7")
    assert keys == ["run-7:0:0", "run-7:0:1", "run-7:3:0"]
    again: list[str] = list(keys)
    keys.clear()
    agent2, _ = agent_with(
        [
            Reply(tool_calls=(call("charge", '{"amount": 1}'), call("charge", '{"amount": 2}'))),
            Reply(tool_calls=(call("charge", '{"amount": 3}'),)),
            "done",
        ],
        [charge],
    )
    await agent2.generate("pay", run_id="run-7")
    assert keys == again  # the same run, replayed, gets the same keys


async def test_calls_of_one_step_run_concurrently_and_answer_in_order():
    started = asyncio.Event()
    order: list[str] = []

    @tool
    async def first() -> str:
        """Waits for the second."""
        await asyncio.wait_for(started.wait(), 1)
        order.append("first")
        return "1"

    @tool
    async def second() -> str:
        """Starts."""
        started.set()
        order.append("second")
        return "2"

    agent, model = agent_with(
        [Reply(tool_calls=(call("first"), call("second"))), "both"], [first, second]
    )
    await agent.generate("x")
    assert order == ["second", "first"]
    assert tool_messages(model.requests[1]) == ["1", "2"]


async def test_plain_functions_are_accepted_as_tools_and_results_become_json():
    def totals(items: list[int]) -> dict[str, int]:
        """Sum the items."""
        return {"sum": sum(items)}

    agent, model = agent_with(
        [Reply(tool_calls=(call("totals", '{"items": [1, 2, 3]}'),)), "6"], [totals]
    )
    await agent.generate("x")
    assert tool_messages(model.requests[1]) == ['{"sum":6}']
    assert model.requests[0].tools[0].name == "totals"


def test_two_tools_with_one_name_are_refused():
    with pytest.raises(ValueError, match="two tools are named 'forecast'"):
        agent_with([], [forecast, forecast])


async def test_a_timeout_the_tool_raises_itself_is_a_failure_not_our_timeout():
    @tool(timeout=5)
    async def upstream() -> str:
        """Calls upstream."""
        raise TimeoutError("upstream took too long")

    agent, model = agent_with([Reply(tool_calls=(call("upstream"),)), "ok"], [upstream])
    await agent.generate("x")
    assert tool_messages(model.requests[1]) == [
        "tool 'upstream' failed: TimeoutError: upstream took too long"
    ]
