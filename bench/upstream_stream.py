"""What it costs to read a whole answer from an upstream stream (`upstream_stream:
always`, which bounds it by the first-token and idle limits) instead of asking for it
plainly (`never`): client CPU per request and requests per second through the Router,
against the simulated fleet in its own process on loopback. Both modes run in the same
rounds, alternating which goes first; the ratios are per round, then the median.

    .venv/bin/python -m bench.upstream_stream [--rounds 5] [--per-round 400]
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import statistics
import sys
import time
from collections.abc import Sequence
from contextlib import AsyncExitStack
from dataclasses import dataclass

import aiohttp
from rich.console import Console
from rich.table import Table

from bastion import Endpoint, Router, RouterOptions, chat
from bastion.testing import DEFAULT_TEXT, Fault
from bench._common import Sample, fleet_process, machine, measure, pinned, plan_pinning

SHORT, LONG = "bench", "bench-long"
# 8 characters a chunk: a short answer is 6 chunks, a long one 240 (a ~240-token answer;
# providers stream about a token per chunk).
CHUNK_CHARS = 8
LONG_TEXT = ((DEFAULT_TEXT + " ") * 44)[: 240 * CHUNK_CHARS]
EXPECTED = {SHORT: DEFAULT_TEXT, LONG: LONG_TEXT}
MODES = ("never", "always")
CELL_TIME_LIMIT = 120.0
REQUEST = chat("Say something short.")


@dataclass(frozen=True, slots=True)
class Cell:
    answer: str  # SHORT or LONG
    concurrency: int

    @property
    def label(self) -> str:
        return (
            f"{'short' if self.answer == SHORT else 'long'} answer, concurrency {self.concurrency}"
        )


CELLS = (Cell(SHORT, 1), Cell(SHORT, 16), Cell(LONG, 1), Cell(LONG, 16))


def _router(url: str, model: str, mode: str) -> Router:
    endpoint = Endpoint(
        id=mode, provider="openai", model=model, base_url=url, api_key="x", upstream_stream=mode
    )
    return Router([endpoint], options=RouterOptions(health_checks=False), default_model=mode)


async def _prepare(url: str) -> None:
    """Tell the fleet to answer LONG with LONG_TEXT; check both modes answer right."""
    fault = Fault.ok(text=LONG_TEXT, chunk_chars=CHUNK_CHARS).to_dict()
    async with (
        aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10)) as session,
        session.put(
            f"{url.removesuffix('/v1')}/_fleet/default", json={"fault": fault, "model": LONG}
        ) as resp,
    ):
        if resp.status != 200:
            raise RuntimeError(f"the fleet refused the long answer: {await resp.text()}")
    for model, text in EXPECTED.items():
        for mode in MODES:
            async with _router(url, model, mode) as router:
                answer = await router.complete(REQUEST)
                if answer.text != text:
                    raise RuntimeError(f"{mode} answered {answer.text[:60]!r}…")


async def _rounds(
    url: str, rounds: int, per_round: int, warmup: int
) -> dict[tuple[Cell, str], list[Sample]]:
    samples: dict[tuple[Cell, str], list[Sample]] = {}
    started = time.perf_counter()
    for r in range(rounds):
        for cell in CELLS:
            calls = per_round if cell.answer == SHORT else max(20, per_round // 8)
            order = MODES if r % 2 == 0 else MODES[::-1]
            for mode in order:
                async with AsyncExitStack() as stack:
                    router = await stack.enter_async_context(_router(url, cell.answer, mode))

                    async def call(router: Router = router) -> str:
                        return (await router.complete(REQUEST)).text

                    sample = await measure(
                        call, calls, cell.concurrency, warmup=warmup, limit=CELL_TIME_LIMIT
                    )
                samples.setdefault((cell, mode), []).append(sample)
        elapsed = time.perf_counter() - started
        print(f"round {r + 1}/{rounds} done ({elapsed:.0f} s)", file=sys.stderr, flush=True)
    return samples


def _report(samples: dict[tuple[Cell, str], list[Sample]], console: Console) -> list[str]:
    table = Table(title="never (plain) against always (a stream read whole), medians over rounds")
    for name in (
        "cell",
        "CPU µs/req never",
        "CPU µs/req always",
        "CPU ratio",
        "RPS never",
        "RPS always",
        "time/req ratio",
    ):
        table.add_column(name, justify="left" if name == "cell" else "right")
    lines = [
        "| cell | CPU µs/request, never | always | CPU ratio | requests/s, never | always "
        "| time per request ratio |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for cell in CELLS:
        plain, streamed = samples[(cell, "never")], samples[(cell, "always")]
        cpu_ratio = statistics.median(
            s.cpu_per_call / p.cpu_per_call for p, s in zip(plain, streamed, strict=True)
        )
        time_ratio = statistics.median(p.rps / s.rps for p, s in zip(plain, streamed, strict=True))
        cpu = [statistics.median(x.cpu_per_call * 1e6 for x in xs) for xs in (plain, streamed)]
        rps = [statistics.median(x.rps for x in xs) for xs in (plain, streamed)]
        row = (
            cell.label,
            f"{cpu[0]:.0f}",
            f"{cpu[1]:.0f}",
            f"{cpu_ratio:.2f}×",
            f"{rps[0]:,.0f}",
            f"{rps[1]:,.0f}",
            f"{time_ratio:.2f}×",
        )
        table.add_row(*row)
        lines.append("| " + " | ".join(row) + " |")
    console.print(table)
    return lines


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--per-round", type=int, default=400)
    parser.add_argument("--warmup", type=int, default=50)
    args = parser.parse_args(argv)
    console = Console(highlight=False, width=None if sys.stdout.isatty() else 120)
    pinning = plan_pinning()
    command = (
        f"python -m bench.upstream_stream --rounds {args.rounds} "
        f"--per-round {args.per_round} --warmup {args.warmup}"
    )
    for line in (f"command: {command}", *machine(("aiohttp", "orjson"))):
        console.print(line)
    console.print(pinning.describe() if pinning else "not pinned (needs Linux and ≥ 2 cores)")
    with (
        fleet_process(SHORT, core=pinning.fleet_core if pinning else None) as url,
        pinned(pinning.bench_core if pinning else None),
    ):

        async def run() -> list[str]:
            await _prepare(url)
            gc.collect()
            gc.freeze()
            return _report(await _rounds(url, args.rounds, args.per_round, args.warmup), console)

        lines = asyncio.run(run())
    console.print("\nmarkdown:\n")
    print("\n".join(lines), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
