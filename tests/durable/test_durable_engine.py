"""The durable engine in one process, on DBOS with a SQLite system database: a run's
model and tool calls are DBOS steps under the run id, in the order they began (parallel
tool calls too); the same run id runs once; a failed run raises the router's own error;
DBOS being one per process, a second engine is refused by name; a run a stopped
replica left pending is taken over by another.

What a restart does (a killed `bastion serve` resuming its run) is tested end to end in
tests/agents_api/test_agents_api_durable.py."""

from __future__ import annotations

import asyncio
import sys
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest

pytest.importorskip("dbos")

from dbos import DBOS

from bastion import ChatRequest, ScriptedModel
from bastion.agents import Agent, AgentOptions, tool
from bastion.durable import DurableEngine, EngineBusy
from bastion.memory.sqlite import SqliteStore
from bastion.models.scripted import Fail, Reply
from bastion.routing.errors import FailoverError

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "agents"))

from agent_support import build_router, call

ran: list[int] = []


@tool
async def lookup(order: int) -> str:
    """Look an order up."""
    await asyncio.sleep(0.01 * (3 - order))  # the second call finishes first
    ran.append(order)
    return f"order {order} shipped"


@pytest.fixture
async def engine(tmp_path: Path) -> AsyncIterator[DurableEngine]:
    launched = DurableEngine(f"sqlite:///{tmp_path / 'runs.db'}", "test-replica/0")
    launched.launch()
    yield launched
    await launched.close()


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[SqliteStore]:
    async with SqliteStore(str(tmp_path / "memory.db"), replica_id="test-replica/0") as opened:
        yield opened


def durable_agent(
    engine: DurableEngine,
    store: SqliteStore,
    *script: Reply | Fail | str,
    default: Callable[[ChatRequest], Reply] | None = None,
) -> Agent:
    model = ScriptedModel(list(script), default=default)
    agent = Agent(
        "a", "x", "only", router=build_router({"only": model}), tools=[lookup],
        options=AgentOptions(run_store=store),
    )  # fmt: skip
    agent.durable = engine
    engine.open(lambda name: agent if name == "a" else None)
    return agent


async def test_model_and_tool_calls_are_steps_of_the_run_in_the_order_they_began(
    engine: DurableEngine, store: SqliteStore
) -> None:
    ran.clear()
    both = (call("lookup", '{"order": 1}'), call("lookup", '{"order": 2}'))
    agent = durable_agent(engine, store, Reply(tool_calls=both), "Both shipped.")

    result = await agent.generate("Where are 1 and 2?", run_id="run-1")

    assert result.text == "Both shipped."
    assert ran == [2, 1]
    steps = await DBOS.list_workflow_steps_async("run-1")
    assert [s["function_name"] for s in steps] == [
        "model:0",
        "tool:lookup",
        "tool:lookup",
        "model:3",
    ]
    assert [s["output"].text for s in steps[1:3]] == ["order 1 shipped", "order 2 shipped"]
    record = await store.get_run("run-1")
    assert record is not None and record.status == "ok"
    assert [s.kind for s in record.steps] == ["model", "tool", "tool", "model"]


async def test_the_same_run_id_runs_once(engine: DurableEngine, store: SqliteStore) -> None:
    ran.clear()
    agent = durable_agent(
        engine, store, Reply(tool_calls=(call("lookup", '{"order": 1}'),)), "Shipped.", "Other."
    )
    first = await agent.generate("Where is 1?", run_id="run-2")
    again = await agent.generate("Where is 1?", run_id="run-2")
    assert (first.text, again.text) == ("Shipped.", "Shipped.")
    assert ran == [1]


async def test_a_run_no_model_answers_raises_the_routers_error_and_reads_failed(
    engine: DurableEngine, store: SqliteStore
) -> None:
    agent = durable_agent(engine, store, Fail("server_error"), Fail("server_error"))
    with pytest.raises(FailoverError, match="server_error"):
        await agent.generate("Hello", run_id="run-3")
    record = await store.get_run("run-3")
    assert record is not None and record.status == "error"


async def test_a_second_engine_in_the_process_is_refused(
    engine: DurableEngine, tmp_path: Path
) -> None:
    with pytest.raises(EngineBusy, match="already runs a durable engine"):
        DurableEngine(f"sqlite:///{tmp_path / 'other.db'}", "other/0").launch()


async def test_a_run_a_stopped_replica_left_pending_is_taken_over_by_another(
    tmp_path: Path,
) -> None:
    ran.clear()
    in_flight = asyncio.Event()

    def hang(request: object) -> Reply:
        in_flight.set()
        return Reply("never sent", delay=3600)

    model = ScriptedModel([Reply(tool_calls=(call("lookup", '{"order": 1}'),))], default=hang)
    agent = Agent("a", "x", "only", router=build_router({"only": model}), tools=[lookup])
    database = f"sqlite:///{tmp_path / 'runs.db'}"
    first = DurableEngine(database, "stopped/0")
    first.launch()
    agent.durable = first
    first.open(lambda name: agent)
    before = asyncio.all_tasks()
    caller = asyncio.create_task(agent.generate("Where is 1?", run_id="run-4"))
    await asyncio.wait_for(in_flight.wait(), 10)  # the tool ran; the model call hangs
    # The replica stops: its tasks end and DBOS shuts down, the run still PENDING.
    for task in asyncio.all_tasks() - before - {asyncio.current_task()}:
        task.cancel()
    await asyncio.sleep(0)
    await first.close()
    assert caller.cancelled() and ran == [1]

    model.default = "Shipped."
    second = DurableEngine(database, "alive/0")
    second.launch()
    try:
        agent.durable = second
        second.open(lambda name: agent)
        assert await second.pending() == {"run-4"}
        assert await second.recover(["stopped/0"]) == ["run-4"]
        handle = await DBOS.retrieve_workflow_async("run-4")
        result = await asyncio.wait_for(handle.get_result(), 10)
    finally:
        await second.close()
    assert result.text == "Shipped."
    assert ran == [1]  # replayed from its record, not run again


async def test_a_caller_that_leaves_does_not_stop_the_run(
    engine: DurableEngine, store: SqliteStore
) -> None:
    ran.clear()
    answering = asyncio.Event()

    def answer_slowly(request: ChatRequest) -> Reply:
        answering.set()  # the tool ran; the model's answer is on its way
        return Reply("Shipped.", delay=2.0)

    tool_call = Reply(tool_calls=(call("lookup", '{"order": 1}'),))
    agent = durable_agent(engine, store, tool_call, default=answer_slowly)
    caller = asyncio.create_task(agent.generate("Where is 1?", run_id="run-5"))
    await asyncio.wait_for(answering.wait(), 10)
    caller.cancel()
    handle = await DBOS.retrieve_workflow_async("run-5")
    result = await asyncio.wait_for(handle.get_result(), 10)
    assert caller.cancelled()
    assert result.text == "Shipped."
    record = await store.get_run("run-5")
    assert record is not None and record.status == "ok"
