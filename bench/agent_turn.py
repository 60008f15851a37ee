"""How much CPU one agent turn costs in Bastion, next to a hand-written loop and to
other agent frameworks.

    python -m bench.agent_turn [--turns N] [--rounds R] [--warmup W] [--profile]

The turn is the same everywhere: a scripted model answers the prompt with one call of
`lookup_order` (an async function returning a small dict), the tool runs, and the model
answers again with the final text: two model steps and one tool call, no network. The
rows:

- hand-written loop: `ScriptedModel.complete`, run the tool, `complete` again — the
  floor, what any agent turn costs at least;
- Bastion: `Agent.generate` over a `Router` with one scripted endpoint, without memory,
  and with SQLite memory (`:memory:`, on a thread: history in, new messages and the run's
  steps out);
- pydantic-ai: `Agent.run` over its `FunctionModel`, scripted alike;
- openai-agents: `Runner.run` over a `Model` answering from the script, tracing off.

Peers that are not installed are left out with a message (`pip install -e '.[bench]'`
installs them; see `bench/agent_peers.py`).

The metric is the process's CPU time (`time.process_time()`) per turn, turns run one
after another. Each of `--rounds` rounds runs every row for `--warmup` untimed turns and
then `--turns` timed ones, rotating the order of the rows from round to round so that
drift falls on every row alike. A row reports the median over rounds; its framework
overhead is the median of its per-round differences from the hand-written loop. Speed is
measured here, never asserted: the goal is reported against, not tested."""

from __future__ import annotations

import argparse
import asyncio
import gc
import os
import statistics
import sys
import time
from collections.abc import Sequence
from contextlib import AsyncExitStack
from dataclasses import dataclass
from typing import Any

import orjson
from rich.console import Console
from rich.table import Table

from bastion import (
    ChatRequest,
    Endpoint,
    Message,
    Reply,
    Router,
    RouterOptions,
    ScriptedModel,
    ToolCall,
)
from bastion.agents import Agent, Tool
from bastion.memory import Memory
from bastion.memory.sqlite import SqliteStore
from bench._common import machine
from bench.agent_peers import Turn, openai_agents_turn, pydantic_ai_turn, version
from bench.agent_profile import BASTION, BASTION_MEMORY, FLOOR, profile

GOAL_US = 500.0  # Bastion's budget: CPU a turn may spend beyond the hand-written loop
INSTRUCTIONS = "You help customers with their orders."
PROMPT = "Where is order 42?"
ARGUMENTS = '{"order_id": 42}'
FINAL = "Order 42 has shipped; it arrives in 2 days."
ENDPOINT = "scripted"
THREAD, RESOURCE = "bench-thread", "bench-user"
# A realistic history: the last 20 messages (5 earlier turns) come with every turn.
HISTORY = 20
# Far above what a cell takes (a few seconds); a hang must not hang the run.
CELL_TIME_LIMIT = 120.0
# Profiled turns per row: enough for a stable ranking, few enough to keep the run short.
PROFILE_TURNS = 500
# The rows' own one-line wrappers live here; profiles leave them out.


@dataclass
class ToolCalls:
    """How often the tool ran: each row is checked to really call it once per turn."""

    count: int = 0


def make_tool(calls: ToolCalls) -> Any:
    async def lookup_order(order_id: int) -> dict[str, Any]:
        """Look an order up by its number.

        Args:
            order_id: The order's number.
        """
        calls.count += 1
        return {"order_id": order_id, "status": "shipped", "eta_days": 2}

    return lookup_order


class _Discard(list[Any]):
    # ScriptedModel keeps every request for tests to inspect; over thousands of turns
    # that would be a growing heap for the garbage collector to walk.
    def append(self, item: Any) -> None:
        pass


def scripted_model() -> ScriptedModel:
    """Answer with the tool call, or with the final text once the tool has answered."""
    call = Reply(tool_calls=(ToolCall("call_1", "lookup_order", ARGUMENTS),))
    final = Reply(FINAL)

    def respond(request: ChatRequest) -> Reply:
        return final if request.messages[-1].role == "tool" else call

    return ScriptedModel(model=ENDPOINT, default=respond, requests=_Discard())


def hand_written_turn(tool_fn: Any) -> Turn:
    """The floor: what an agent turn does with nothing around it."""
    model = scripted_model()
    specs = (Tool(tool_fn).spec,)
    tools = {tool_fn.__name__: tool_fn}
    system = Message("system", INSTRUCTIONS)

    async def turn() -> str:
        messages = [system, Message("user", PROMPT)]
        response = await model.complete(ChatRequest(tuple(messages), specs))
        messages.append(response.message)
        for call in response.message.tool_calls:
            result = await tools[call.name](**orjson.loads(call.arguments))
            messages.append(Message("tool", orjson.dumps(result).decode(), (), call.id, call.name))
        response = await model.complete(ChatRequest(tuple(messages), specs))
        return response.message.content or ""

    return turn


def bastion_turn(tool_fn: Any, memory: Memory | None = None) -> Turn:
    endpoint = Endpoint(id=ENDPOINT, provider="scripted", model=ENDPOINT)
    # Health checks would probe in the background; a scripted endpoint has nothing to probe.
    router = Router([(endpoint, scripted_model())], options=RouterOptions(health_checks=False))
    agent = Agent("bench", INSTRUCTIONS, ENDPOINT, router=router, tools=[tool_fn], memory=memory)

    if memory is None:

        async def turn() -> str:
            return (await agent.generate(PROMPT)).text

    else:

        async def turn() -> str:
            result = await agent.generate(PROMPT, thread_id=THREAD, resource_id=RESOURCE)
            return result.text

    return turn


async def build_rows(stack: AsyncExitStack, calls: ToolCalls, console: Console) -> dict[str, Turn]:
    """Every row that can run here, each checked to answer FINAL after one tool call."""
    tool_fn = make_tool(calls)
    store = await stack.enter_async_context(SqliteStore(":memory:"))
    rows = {
        FLOOR: hand_written_turn(tool_fn),
        BASTION: bastion_turn(tool_fn),
        BASTION_MEMORY: bastion_turn(tool_fn, Memory(store, last_n=HISTORY)),
    }
    peers = {
        f"pydantic-ai {version('pydantic-ai-slim')} Agent.run": pydantic_ai_turn,
        f"openai-agents {version('openai-agents')} Runner.run": openai_agents_turn,
    }
    for name, build in peers.items():
        try:
            built = build(tool_fn, instructions=INSTRUCTIONS, prompt=PROMPT,
                          arguments=ARGUMENTS, final=FINAL)  # fmt: skip
            if not isinstance(built, str):
                await check(name, built, calls)
        except Exception as exc:
            # Another version of the peer, with another API: its row is left out too.
            built = f"{type(exc).__name__}: {exc}"
        if isinstance(built, str):
            console.print(f"{name.split()[0]}: row left out — {built}")
        else:
            rows[name] = built
    for name in (FLOOR, BASTION, BASTION_MEMORY):
        await check(name, rows[name], calls)
    return rows


async def check(name: str, turn: Turn, calls: ToolCalls) -> None:
    """A row is measured only if it answers FINAL after exactly one tool call."""
    before = calls.count
    text = await turn()
    if text != FINAL or calls.count != before + 1:
        raise RuntimeError(f"{name}: answered {text!r} after {calls.count - before} tool calls")


# --- measuring -------------------------------------------------------------------------


async def cpu_per_turn(turn: Turn, turns: int, warmup: int) -> float:
    """CPU seconds per turn over `turns` turns, after `warmup` untimed ones.

    Garbage left by the previous cell is collected first, so it is not charged to this
    one; collections caused by this cell's own garbage are its cost."""
    async with asyncio.timeout(CELL_TIME_LIMIT):
        for _ in range(warmup):
            await turn()
        gc.collect()
        started = time.process_time()
        for _ in range(turns):
            await turn()
        return (time.process_time() - started) / turns


@dataclass(frozen=True, slots=True)
class Row:
    name: str
    cpu_us: float  # median over rounds
    overhead_us: float | None  # None for the floor itself
    spread_us: tuple[float, float]  # min and max over rounds


async def run_rounds(rows: dict[str, Turn], turns: int, rounds: int, warmup: int) -> list[Row]:
    names = list(rows)
    samples: dict[str, list[float]] = {name: [] for name in names}
    for r in range(rounds):
        shift = r % len(names)
        for name in names[shift:] + names[:shift]:
            samples[name].append(await cpu_per_turn(rows[name], turns, warmup) * 1e6)
    floor = samples[FLOOR]
    out = []
    for name in names:
        mine = samples[name]
        # Paired per round: each row against the floor measured moments apart.
        overhead = (
            None
            if name == FLOOR
            else statistics.median(m - f for m, f in zip(mine, floor, strict=True))
        )
        out.append(Row(name, statistics.median(mine), overhead, (min(mine), max(mine))))
    return out


# --- output ----------------------------------------------------------------------------


def _overhead(row: Row) -> str:
    return "—" if row.overhead_us is None else f"{row.overhead_us:+,.0f}"


def print_table(rows: Sequence[Row], console: Console) -> None:
    table = Table(title="CPU per agent turn (median over rounds)")
    table.add_column("agent")
    table.add_column("CPU µs/turn", justify="right")
    table.add_column("framework overhead (µs)", justify="right")
    table.add_column("CPU µs, min–max", justify="right", style="dim")
    for row in rows:
        spread = f"{row.spread_us[0]:,.0f}–{row.spread_us[1]:,.0f}"
        table.add_row(row.name, f"{row.cpu_us:,.0f}", _overhead(row), spread)
    console.print(table)


def markdown(rows: Sequence[Row]) -> str:
    lines = [
        "| agent | CPU µs/turn | framework overhead (µs) |",
        "|---|---:|---:|",
    ]
    lines += [f"| {r.name} | {r.cpu_us:,.0f} | {_overhead(r)} |" for r in rows]
    return "\n".join(lines)


def verdict(rows: Sequence[Row]) -> str:
    row = next(r for r in rows if r.name == BASTION)
    assert row.overhead_us is not None
    gap = row.overhead_us - GOAL_US
    status = "within the" if gap <= 0 else f"{gap:.0f} µs over the"
    return (
        f"{BASTION}: {row.overhead_us:+.0f} µs/turn over the {FLOOR} — {status} "
        f"{GOAL_US:.0f} µs goal"
    )


# --- entry point -----------------------------------------------------------------------


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.agent_turn", description=__doc__)
    parser.add_argument("--turns", type=int, default=1000, help="timed turns per row per round")
    parser.add_argument("--rounds", type=int, default=5, help="rounds (median per row)")
    parser.add_argument(
        "--warmup", type=int, default=100, help="untimed turns before each row in each round"
    )
    parser.add_argument(
        "--profile", action="store_true", help="also profile Bastion against the floor"
    )
    args = parser.parse_args(argv)
    # Bounded in count: a typo must not start an hour-long run.
    for name, low, high in (("turns", 10, 20_000), ("rounds", 1, 15), ("warmup", 0, 10_000)):
        if not low <= getattr(args, name) <= high:
            parser.error(f"--{name} must be between {low} and {high}")
    return args


def command(args: argparse.Namespace) -> str:
    python = os.path.relpath(sys.executable)
    python = sys.executable if python.startswith("..") else python
    flags = f"--turns {args.turns} --rounds {args.rounds} --warmup {args.warmup}"
    return f"{python} -m bench.agent_turn {flags}" + (" --profile" if args.profile else "")


async def bench(args: argparse.Namespace, console: Console) -> None:
    async with AsyncExitStack() as stack:
        rows = await build_rows(stack, ToolCalls(), console)
        # Everything alive now (modules, agents, schemas) is left out of later
        # collections, so a full collection costs the same whichever row triggers it.
        gc.collect()
        gc.freeze()
        results = await run_rounds(rows, args.turns, args.rounds, args.warmup)
        console.print()
        print_table(results, console)
        console.print(verdict(results))
        console.print("\nmarkdown:\n")
        print(markdown(results), flush=True)
        if args.profile:
            console.print()
            for line in await profile(rows, min(args.turns, PROFILE_TURNS), args.warmup):
                print(line, flush=True)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    # Piped output (a log, a file) would otherwise be cut to 80 columns.
    console = Console(highlight=False, width=None if sys.stdout.isatty() else 120)
    for line in (
        f"command: {command(args)}",
        *machine(("pydantic", "pydantic-ai-slim", "openai-agents")),
    ):
        console.print(line)
    console.print(
        f"{args.turns * args.rounds} timed turns per row: {args.rounds} rounds × "
        f"{args.turns}, each after {args.warmup} warm-up turns"
    )
    started = time.perf_counter()
    try:
        asyncio.run(bench(args, console))
    except KeyboardInterrupt:
        console.print("interrupted")
        return 130
    console.print(f"\nrun time: {time.perf_counter() - started:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
