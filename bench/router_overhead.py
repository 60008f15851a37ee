"""How much CPU the Router adds per call, next to the bare client and the openai SDK.

    python -m bench.router_overhead [--calls N] [--rounds R] [--warmup W] [--profile]

Every client talks to the same fake OpenAI-compatible upstream, which runs in its own
process (on its own core where the OS allows pinning), so the CPU time measured here
is the client side only. The clients:

- bare client: `OpenAIChatModel(endpoint).complete(request)`, the model the router wraps;
- router: `Router` over that one endpoint — plan, breaker, budget, events, no hooks;
- router, 2 endpoints + hook: a priority group of two endpoints and a hook counting
  every event, to show what observability costs;
- openai SDK: `AsyncOpenAI(max_retries=0).chat.completions.create(...)`.

The calls: "complete" and "stream" get the fake's default answer (44 characters, 6
stream chunks); "long stream" gets 240 chunks, since the router's stream costs grow
with the number of chunks. The long stream cell runs 1/4 of the calls, without the SDK.

The metric is the benchmark process's CPU time (`time.process_time()`) per call, plus
wall-clock calls per second. `--calls` timed calls per cell are split over `--rounds`
rounds; each round measures every cell (call kind × concurrency × client) with new
clients and after a warm-up, rotating the order of the clients from round to round so
that drift (CPU frequency, a noisy neighbour, the other process) falls on every client
alike. A cell reports the median over rounds; "overhead vs bare" is the median of the
per-round differences, which pairs each client with the bare client measured moments
apart. Speed is measured here, never asserted: the goal is reported against, not tested."""

from __future__ import annotations

import argparse
import asyncio
import gc
import os
import sys
import time
from collections import Counter
from collections.abc import Sequence
from contextlib import AsyncExitStack
from dataclasses import dataclass

import aiohttp
from openai import AsyncOpenAI
from openai.types.chat import ChatCompletionMessageParam
from rich.console import Console

from bastion import Endpoint, ModelGroup, Router, RouterOptions, TextDelta, chat
from bastion.models.openai import OpenAIChatModel
from bastion.observability.events import Event
from bastion.testing.faults import Fault
from bastion.testing.server import DEFAULT_TEXT
from bench._common import (
    Call,
    Cell,
    GcWatch,
    Row,
    Sample,
    extra_time,
    fleet_process,
    machine,
    markdown,
    measure,
    own_times,
    pinned,
    plan_pinning,
    print_table,
    summarize,
)

GOAL_US = 300.0  # the Router's budget: CPU it may add per call over the bare client
CONCURRENCIES = (1, 16, 64)
STREAM_CONCURRENCY = 16
MODEL = "bench"  # answers the fake's default text: 44 characters, 6 stream chunks
LONG_MODEL = "bench-long"  # told to answer LONG_TEXT
# Providers stream about a token per chunk: 240 chunks is a ~240-token answer.
LONG_CHUNKS, CHUNK_CHARS = 240, 8
LONG_TEXT = ((DEFAULT_TEXT + " ") * 44)[: LONG_CHUNKS * CHUNK_CHARS]
# A long stream costs ~10× a short one: fewer of them (and fewer warm-up calls) keep
# that cell about as long as the others.
LONG_SHARE = 4
PROMPT = "Say something short."
REQUEST = chat(PROMPT)
OPENAI_MESSAGES: list[ChatCompletionMessageParam] = [{"role": "user", "content": PROMPT}]
# Far above what a cell takes (a few seconds); a hung upstream must not hang the run.
CELL_TIME_LIMIT = 120.0
BARE = "bare client"
TOP_FUNCTIONS = 15
PROFILE_CONCURRENCY = 16
KINDS = {"complete": MODEL, "stream": MODEL, "long stream": LONG_MODEL}
EXPECTED = {MODEL: DEFAULT_TEXT, LONG_MODEL: LONG_TEXT}


@dataclass(frozen=True, slots=True)
class Client:
    name: str
    call: Call


class EventCounter:
    """A hook of the cheapest useful kind: count events by type, as a metrics exporter
    would before it increments its counters."""

    def __init__(self) -> None:
        self.counts: Counter[str] = Counter()

    def __call__(self, event: Event) -> None:
        self.counts[type(event).__name__] += 1


async def open_clients(
    url: str, kind: str, stack: AsyncExitStack, events: EventCounter
) -> list[Client]:
    """The clients of one kind of call, new (no pooled connections yet), closed by
    `stack`; the bare client first, then the one-endpoint router."""
    model = KINDS[kind]

    def endpoint(name: str) -> Endpoint:
        return Endpoint(id=name, provider="openai", model=model, base_url=url, api_key="x")

    # Health checks probe in the background, off the request path; leaving them out
    # keeps their GETs from landing in some cells and not others.
    options = RouterOptions(health_checks=False)
    bare = OpenAIChatModel(endpoint(model))
    stack.push_async_callback(bare.aclose)
    router = await stack.enter_async_context(
        Router([endpoint(model)], options=options, default_model=model)
    )
    sdk = AsyncOpenAI(base_url=url, api_key="x", max_retries=0)
    stack.push_async_callback(sdk.close)

    if kind != "complete":
        # Every stream client does the same work with what it reads: keep the text.
        async def bare_stream() -> str:
            return "".join([e.text async for e in bare.stream(REQUEST) if isinstance(e, TextDelta)])

        async def router_stream() -> str:
            answer = router.stream(REQUEST)
            return "".join([e.text async for e in answer if isinstance(e, TextDelta)])

        async def sdk_stream() -> str:
            chunks = await sdk.chat.completions.create(
                model=model,
                messages=OPENAI_MESSAGES,
                stream=True,
                stream_options={"include_usage": True},  # as the bare client asks
            )
            parts = [c.choices[0].delta.content or "" async for c in chunks if c.choices]
            return "".join(parts)

        clients = [Client(BARE, bare_stream), Client("router", router_stream)]
        # At ~14× the bare client's CPU (~24 ms a call here), long SDK streams would
        # double the run; the short stream row already shows where the SDK stands.
        return [*clients, Client("openai SDK", sdk_stream)] if kind == "stream" else clients

    group = ModelGroup.of("primary", "secondary", strategy="priority")
    observed = await stack.enter_async_context(
        Router(
            [endpoint("primary"), endpoint("secondary")],
            {"chat": group},
            options=options,
            default_model="chat",
            hooks=(events,),
        )
    )

    async def bare_complete() -> str:
        return (await bare.complete(REQUEST)).text

    async def router_complete() -> str:
        return (await router.complete(REQUEST)).text

    async def observed_complete() -> str:
        return (await observed.complete(REQUEST)).text

    async def sdk_complete() -> str:
        answer = await sdk.chat.completions.create(model=model, messages=OPENAI_MESSAGES)
        return answer.choices[0].message.content or ""

    return [
        Client(BARE, bare_complete),
        Client("router", router_complete),
        Client("router, 2 endpoints + hook", observed_complete),
        Client("openai SDK", sdk_complete),
    ]


async def prepare_fleet(url: str) -> None:
    """Tell the fake upstream to answer LONG_MODEL with LONG_TEXT, over its control
    routes, then check that every client gets the answer it should: a misconfigured
    client fails here rather than hide in the numbers."""
    root = url.removesuffix("/v1")
    fault = Fault.ok(text=LONG_TEXT, chunk_chars=CHUNK_CHARS).to_dict()
    async with (
        aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10)) as session,
        session.put(f"{root}/_fleet/default", json={"fault": fault, "model": LONG_MODEL}) as resp,
    ):
        if resp.status != 200:
            raise RuntimeError(f"the fleet refused the long answer: {await resp.text()}")
    for kind, model in KINDS.items():
        async with AsyncExitStack() as stack:
            for client in await open_clients(url, kind, stack, EventCounter()):
                text = await client.call()
                if text != EXPECTED[model]:
                    raise RuntimeError(f"{client.name} ({kind}) answered {text[:60]!r}…")


# --- the run ---------------------------------------------------------------------------


async def run_rounds(
    url: str, events: EventCounter, per_round: int, rounds: int, warmup: int
) -> list[Row]:
    """Every cell `rounds` times, `per_round` timed calls each; one row per cell and client.

    Each cell gets new clients: a connection pool keeps what an earlier cell at a higher
    concurrency opened, and a pool that scans its connections (httpx does) would then
    be slower for reasons that have nothing to do with this cell.
    """
    started = time.perf_counter()
    cells = [Cell("complete", c) for c in CONCURRENCIES]
    cells += [Cell("stream", STREAM_CONCURRENCY), Cell("long stream", STREAM_CONCURRENCY)]
    samples: dict[tuple[Cell, str], list[Sample]] = {}
    names: dict[Cell, list[str]] = {}
    for r in range(rounds):
        for cell in cells:
            calls, warm = per_round, warmup
            if cell.kind == "long stream":
                calls, warm = max(10, per_round // LONG_SHARE), warmup // LONG_SHARE
            async with AsyncExitStack() as stack:
                group = await open_clients(url, cell.kind, stack, events)
                names[cell] = [c.name for c in group]
                shift = r % len(group)
                for client in group[shift:] + group[:shift]:
                    sample = await measure(
                        client.call,
                        calls,
                        cell.concurrency,
                        warmup=warm,
                        limit=CELL_TIME_LIMIT,
                    )
                    samples.setdefault((cell, client.name), []).append(sample)
        elapsed = time.perf_counter() - started
        print(f"round {r + 1}/{rounds} done ({elapsed:.0f} s)", file=sys.stderr, flush=True)
    return summarize(cells, names, samples, baseline=BARE)


async def profile(url: str, calls: int, concurrency: int, warmup: int) -> list[str]:
    """Where the router's extra CPU goes: profile the bare client and the router on the
    same calls, then list what the router spends beyond the bare client."""
    lines = [
        f"cProfile, {calls} calls per client at concurrency {concurrency}: own time, "
        "router minus bare client (cProfile inflates times several-fold; read the order)"
    ]
    for kind in ("complete", "stream"):
        lines.append(f"{kind}:")
        async with AsyncExitStack() as stack:
            # The bare client, then the one-endpoint router.
            group = (await open_clients(url, kind, stack, EventCounter()))[:2]
            # cProfile does not see the garbage collector; a run without it does.
            for client in group:
                watch = GcWatch()
                await measure(
                    client.call,
                    calls,
                    concurrency,
                    warmup=warmup,
                    limit=CELL_TIME_LIMIT,
                    watch=watch,
                )
                lines.append(
                    f"  {client.name}: {watch.collections * 1000 / calls:.1f} GC runs per 1000 "
                    f"calls, {watch.seconds / calls * 1e6:.1f} µs/call in the collector"
                )
            bare, router = [
                await own_times(c.call, calls, concurrency, warmup=warmup, limit=CELL_TIME_LIMIT)
                for c in group
            ]
        lines += extra_time(bare, router, calls, top=TOP_FUNCTIONS)
    return lines


# --- output ----------------------------------------------------------------------------


def verdict(rows: Sequence[Row]) -> list[str]:
    """The goal, checked against the plain router in every cell."""
    out = []
    for row in rows:
        if row.client != "router" or row.overhead_us is None:
            continue
        gap = row.overhead_us - GOAL_US
        status = "within the" if gap <= 0 else f"{gap:.0f} µs over the"
        out.append(
            f"router, {row.cell.kind} at concurrency {row.cell.concurrency}: "
            f"{row.overhead_us:+.0f} µs/call over the bare client — {status} "
            f"{GOAL_US:.0f} µs goal"
        )
    return out


# --- entry point -----------------------------------------------------------------------


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.router_overhead", description=__doc__)
    parser.add_argument(
        "--calls", type=int, default=2000, help="timed calls per cell, split over the rounds"
    )
    # Many short rounds rather than a few long ones: this machine's speed drifts over
    # seconds (a shared VM), and pairing each client with the bare client measured
    # moments before or after cancels most of it.
    parser.add_argument("--rounds", type=int, default=10, help="rounds (median per cell)")
    parser.add_argument(
        "--warmup", type=int, default=50, help="untimed calls before each cell in each round"
    )
    parser.add_argument(
        "--profile", action="store_true", help="also profile the router against the bare client"
    )
    args = parser.parse_args(argv)
    # Bounded in count: a typo must not start an hour-long run.
    for name, low, high in (("calls", 10, 100_000), ("rounds", 1, 15), ("warmup", 0, 10_000)):
        if not low <= getattr(args, name) <= high:
            parser.error(f"--{name} must be between {low} and {high}")
    args.per_round = -(-args.calls // args.rounds)  # rounded up: never fewer than asked
    return args


def command(args: argparse.Namespace) -> str:
    python = os.path.relpath(sys.executable)
    python = sys.executable if python.startswith("..") else python
    flags = f"--calls {args.calls} --rounds {args.rounds} --warmup {args.warmup}"
    return f"{python} -m bench.router_overhead {flags}" + (" --profile" if args.profile else "")


async def bench(url: str, args: argparse.Namespace, console: Console) -> None:
    await prepare_fleet(url)
    # Everything alive now (imported modules, the SDK's models) is left out of later
    # collections, so a full collection costs the same whichever client triggers it,
    # and the collection before each cell stays cheap.
    gc.collect()
    gc.freeze()
    events = EventCounter()
    rows = await run_rounds(url, events, args.per_round, args.rounds, args.warmup)
    print_table(rows, console, title="Client CPU per call (median over rounds)")
    for line in verdict(rows):
        console.print(line)
    requests = events.counts["RequestFinished"]
    console.print(
        f"hook: {sum(events.counts.values()) / max(requests, 1):.2f} events per request "
        f"({', '.join(f'{n} {k}' for k, n in events.counts.items())})"
    )
    console.print("\nmarkdown:\n")
    print(markdown(rows), flush=True)
    if args.profile:
        console.print()
        for line in await profile(url, args.calls, PROFILE_CONCURRENCY, args.warmup):
            print(line, flush=True)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    # Piped output (a log, a file) would otherwise be cut to 80 columns.
    console = Console(highlight=False, width=None if sys.stdout.isatty() else 120)
    pinning = plan_pinning()
    for line in (f"command: {command(args)}", *machine()):
        console.print(line)
    console.print(pinning.describe() if pinning else "not pinned (needs Linux and ≥ 2 cores)")
    console.print(
        f"{args.per_round * args.rounds} timed calls per cell: {args.rounds} rounds × "
        f"{args.per_round}, each after {args.warmup} warm-up calls (long stream: 1/{LONG_SHARE})"
    )
    started = time.perf_counter()
    try:
        with (
            fleet_process(MODEL, core=pinning.fleet_core if pinning else None) as url,
            pinned(pinning.bench_core if pinning else None),
        ):
            console.print(f"fake upstream: {url} (separate process)\n")
            asyncio.run(bench(url, args, console))
    except KeyboardInterrupt:
        console.print("interrupted; the fleet was stopped")
        return 130
    console.print(f"\nrun time: {time.perf_counter() - started:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
