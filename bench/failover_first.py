"""Latency when the primary answers 500 to a share of requests and a fallback is healthy:
failing over at once (`failover_first`, the default) against retrying the primary after
a backoff, and a healthy primary as the floor. One run, one process, real loopback HTTP.

    .venv/bin/python -m bench.failover_first [--requests 400] [--error-rate 0.3]
"""

from __future__ import annotations

import argparse
import asyncio
import random
import statistics
import time
from typing import Any

from rich.console import Console
from rich.table import Table

from bastion import Router, chat
from bastion.testing import Fault, Fleet

LATENCY = 0.05  # each upstream's answer time, seconds


def _config(fleet: Fleet, *, failover_first: bool) -> dict[str, Any]:
    return {
        "endpoints": [
            {
                "id": up.name,
                "provider": "openai",
                "model": up.name,
                "base_url": up.base_url,
                "health": False,
            }
            for up in fleet
        ],
        "models": {"chat": {"targets": ["primary", "fallback"]}},
        "default_model": "chat",
        "health_checks": False,
        "failover_first": failover_first,
    }


def _quantile(samples: list[float], q: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


async def _cell(
    fleet: Fleet, *, requests: int, error_rate: float, failover_first: bool, seed: int
) -> dict[str, float]:
    rng = random.Random(seed)
    # Enough scripted answers for every call, retries included; the rest are healthy.
    faults = [
        Fault.status(500) if rng.random() < error_rate else Fault.ok(latency=LATENCY)
        for _ in range(requests * 4)
    ]
    fleet["primary"].script(*faults)
    fleet["fallback"].set_default(Fault.ok(latency=LATENCY))
    fleet.clear_attempts()
    times: list[float] = []
    async with Router.from_config(_config(fleet, failover_first=failover_first)) as router:
        for _ in range(requests):
            started = time.perf_counter()
            await router.complete(chat("hello"))
            times.append(time.perf_counter() - started)
    fleet["primary"].set_default(Fault.ok(latency=LATENCY))
    fleet["primary"].clear_script()
    return {
        "p50": statistics.median(times) * 1000,
        "p95": _quantile(times, 0.95) * 1000,
        "p99": _quantile(times, 0.99) * 1000,
        "calls": len(fleet.attempts) / requests,
    }


async def main(requests: int, error_rate: float) -> None:
    console = Console()
    rows = []
    async with Fleet(["primary", "fallback"]) as fleet:
        for label, rate, first in [
            ("healthy primary", 0.0, True),
            (f"{error_rate:.0%} 500s, retry in place (failover_first: false)", error_rate, False),
            (f"{error_rate:.0%} 500s, fail over at once (default)", error_rate, True),
        ]:
            fleet["primary"].set_default(Fault.ok(latency=LATENCY))
            cell = await _cell(
                fleet, requests=requests, error_rate=rate, failover_first=first, seed=7
            )
            rows.append((label, cell))
    table = Table(title=f"concurrency 1, {requests} requests, {LATENCY * 1000:.0f} ms upstreams")
    for column in ("case", "p50 ms", "p95 ms", "p99 ms", "upstream calls / request"):
        table.add_column(column)
    for label, cell in rows:
        table.add_row(
            label,
            f"{cell['p50']:.1f}",
            f"{cell['p95']:.1f}",
            f"{cell['p99']:.1f}",
            f"{cell['calls']:.2f}",
        )
    console.print(table)
    print("| case | p50 ms | p95 ms | p99 ms | upstream calls / request |")
    print("|---|---|---|---|---|")
    for label, cell in rows:
        print(
            f"| {label} | {cell['p50']:.1f} | {cell['p95']:.1f} | {cell['p99']:.1f} "
            f"| {cell['calls']:.2f} |"
        )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--requests", type=int, default=400)
    parser.add_argument("--error-rate", type=float, default=0.3)
    args = parser.parse_args()
    asyncio.run(main(args.requests, args.error_rate))
