"""What durability costs per agent turn: the same turn with and without `durability:`.

    python -m bench.durable_turn [--database URL] [--turns N] [--rounds R] [--warmup W]

The turn is `bench.agent_turn`'s: a scripted model calls `lookup_order`, the tool runs,
the model answers — two model steps and one tool call, no network. The rows:

- not durable: `Agent.generate` over a `Router` with one scripted endpoint;
- durable: the same agent with a `DurableEngine` (DBOS) on `--database` (default a
  SQLite file in a temporary directory; `postgresql://...` for PostgreSQL): each turn
  is a workflow with three recorded steps.

DBOS is one instance per process, so one run measures one database; run it again with
another `--database` for another row. Both rows run in the same process, in rounds that
alternate their order. The metrics are the process's CPU time per turn (every thread:
DBOS writes its records from a thread pool, and that is its cost) and the wall time per
turn, turns run one after another. Each is the median over rounds; the difference is
paired per round. Measured, never asserted."""

from __future__ import annotations

import argparse
import asyncio
import gc
import statistics
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path

from bastion import Endpoint, Router, RouterOptions
from bastion.agents import Agent
from bastion.durable import DurableEngine
from bench._common import machine
from bench.agent_turn import (
    ENDPOINT,
    FINAL,
    INSTRUCTIONS,
    PROMPT,
    ToolCalls,
    make_tool,
    scripted_model,
)

GOAL_US = 1000.0  # CPU a durable turn may spend beyond the same turn without durability
PLAIN, DURABLE = "not durable", "durable"
Turn = Callable[[], Awaitable[str]]


def build_agent(calls: ToolCalls) -> Agent:
    endpoint = Endpoint(id=ENDPOINT, provider="scripted", model=ENDPOINT)
    router = Router([(endpoint, scripted_model())], options=RouterOptions(health_checks=False))
    return Agent("bench", INSTRUCTIONS, ENDPOINT, router=router, tools=[make_tool(calls)])


def turn_of(agent: Agent) -> Turn:
    async def turn() -> str:
        return (await agent.generate(PROMPT)).text

    return turn


async def measure(turn: Turn, turns: int, warmup: int) -> tuple[float, float]:
    """(CPU µs, wall µs) per turn over `turns` turns, after `warmup` untimed ones."""
    for _ in range(warmup):
        await turn()
    gc.collect()
    cpu, wall = time.process_time(), time.perf_counter()
    for _ in range(turns):
        await turn()
    return (
        (time.process_time() - cpu) / turns * 1e6,
        (time.perf_counter() - wall) / turns * 1e6,
    )


async def bench(args: argparse.Namespace) -> None:
    calls = ToolCalls()
    plain = build_agent(calls)
    durable = build_agent(calls)
    with tempfile.TemporaryDirectory() as scratch:
        database = args.database or f"sqlite:///{Path(scratch) / 'runs.db'}"
        engine = DurableEngine(database, f"bench-{time.time_ns()}")
        engine.launch()
        try:
            engine.open(lambda name: durable)
            durable.durable = engine
            rows = {PLAIN: turn_of(plain), DURABLE: turn_of(durable)}
            for name, turn in rows.items():
                before = calls.count
                if await turn() != FINAL or calls.count != before + 1:
                    raise RuntimeError(f"{name}: the turn did not answer after one tool call")
            samples: dict[str, list[tuple[float, float]]] = {name: [] for name in rows}
            for r in range(args.rounds):
                order = list(rows) if r % 2 == 0 else list(rows)[::-1]
                for name in order:
                    samples[name].append(await measure(rows[name], args.turns, args.warmup))
        finally:
            await engine.close()
    report(args, samples, database)


def report(
    args: argparse.Namespace, samples: dict[str, list[tuple[float, float]]], database: str
) -> None:
    kind = database.split(":", 1)[0]
    print(f"# durability per agent turn — DBOS on {kind}")
    database_arg = " --database <postgres>" if args.database else ""
    print(f"python -m bench.durable_turn --turns {args.turns} --rounds {args.rounds} "
          f"--warmup {args.warmup}{database_arg}")  # fmt: skip
    for line in machine(("dbos", "sqlalchemy")):
        print(line)
    print()
    print("| row | CPU µs/turn | wall µs/turn |")
    print("| --- | ---: | ---: |")
    for name, rows in samples.items():
        cpu = statistics.median(c for c, _ in rows)
        wall = statistics.median(w for _, w in rows)
        print(f"| {name} ({kind}) | {cpu:,.0f} | {wall:,.0f} |" if name == DURABLE
              else f"| {name} | {cpu:,.0f} | {wall:,.0f} |")  # fmt: skip
    pairs = list(zip(samples[DURABLE], samples[PLAIN], strict=True))
    extra_cpu = statistics.median(d[0] - p[0] for d, p in pairs)
    extra_wall = statistics.median(d[1] - p[1] for d, p in pairs)
    ratio = statistics.median(d[0] / p[0] for d, p in pairs)
    print()
    print(f"durable − not durable: {extra_cpu:+,.0f} µs CPU, {extra_wall:+,.0f} µs wall "
          f"per turn; CPU ratio {ratio:.2f}×")  # fmt: skip
    met = "met" if extra_cpu <= GOAL_US else "NOT met"
    print(f"goal ≤ {GOAL_US:,.0f} µs more CPU per turn: {met}")


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--database", default=None, help="DBOS system database URL")
    parser.add_argument("--turns", type=int, default=200)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--warmup", type=int, default=20)
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    asyncio.run(bench(parse_args(argv)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
