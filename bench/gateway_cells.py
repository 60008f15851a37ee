"""The parts of the gateway benchmark, one function each: plain requests (wrk), streams
and failover (the aiohttp client), the memory soak and the py-spy profile. Each takes
the targets and the fleet and returns what it measured; `bench.gateway` runs them.
"""

from __future__ import annotations

import asyncio
import sys
import time
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor, wait
from dataclasses import dataclass

from bench import loadgen, procs, spy
from bench._common import FleetProcess
from bench.gateway_report import (
    BASTION,
    DOWN,
    HEALTHY,
    LITELLM,
    MIXED,
    Cell,
    Failover,
    Measured,
    Soak,
)
from bench.gateway_targets import (
    MIX_LENGTH,
    Target,
    body,
    breaker_of,
    control,
    mixed_script,
    set_latency,
)

CONCURRENCIES = (1, 16, 64)
LATENCIES_MS = (0, 50)
STREAM_CONCURRENCY = FAILOVER_CONCURRENCY = SOAK_CONCURRENCY = PROFILE_CONCURRENCY = 16
FAILOVER_LATENCY_MS = 50
# The model a client names in each failover scenario, per gateway (gateway_targets).
FAILOVER_MODELS = {
    BASTION: {HEALTHY: "bench", DOWN: "down", MIXED: "mixed"},
    LITELLM: {HEALTHY: "bench", DOWN: "dead", MIXED: "flaky"},
}
# Before a failover row: enough requests for a breaker to open (5 failures in a row),
# bounded in time too: LiteLLM takes seconds per request with its primary down.
FAILOVER_WARMUP, FAILOVER_WARMUP_SECONDS = 100, 3.0


@dataclass(frozen=True, slots=True)
class Plan:
    """How long each part runs; `--quick` shortens every part."""

    cell_seconds: int
    rounds: int  # plain cells: each target measured this often, the best round kept
    warm_seconds: int
    stream_latencies: tuple[int, ...]
    failover_requests: int
    failover_seconds: float
    soak_seconds: int
    start_samples: int
    profile_seconds: int


DEFAULT = Plan(3, 2, 1, (50,), 2000, 10.0, 30, 3, 8)
QUICK = Plan(2, 1, 1, (50,), 600, 4.0, 10, 2, 4)


def progress(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


# --- the measurements ---------------------------------------------------------------------


def cpu_us(before: procs.Usage | None, after: procs.Usage | None, requests: int) -> float | None:
    if before is None or after is None or not requests:
        return None
    return (after.cpu_seconds - before.cpu_seconds) / requests * 1e6


def plain_cells(plan: Plan, fleet: FleetProcess, targets: Sequence[Target]) -> list[Measured]:
    """Every latency × concurrency × target with wrk. Each target is warmed up, then
    measured `plan.rounds` times, the order rotating from round to round; the round
    with the most requests per second is kept. Other work on a shared machine only ever
    slows a round down, so the best round is the one it disturbed least."""
    out = []
    for latency in LATENCIES_MS:
        set_latency(fleet, latency)
        for concurrency in CONCURRENCIES:
            cell = Cell("complete", latency, concurrency)
            progress(f"plain: {latency} ms upstream, concurrency {concurrency}")
            for target in targets:
                loadgen.run_wrk(target.url, body(), concurrency, plan.warm_seconds)
            best: dict[str, Measured] = {}
            for r in range(plan.rounds):
                shift = r % len(targets)
                for target in [*targets[shift:], *targets[:shift]]:
                    before = target.usage()
                    result = loadgen.run_wrk(target.url, body(), concurrency, plan.cell_seconds)
                    cpu = cpu_us(before, target.usage(), result.requests)
                    kept = best.get(target.name)
                    if kept is None or result.rps > kept.result.rps:
                        best[target.name] = Measured(cell, target.name, result, cpu)
            out += [best[t.name] for t in targets]
    return out


def stream_cells(plan: Plan, fleet: FleetProcess, targets: Sequence[Target]) -> list[Measured]:
    out = []
    data = body(stream=True)
    for latency in plan.stream_latencies:
        set_latency(fleet, latency)
        cell = Cell("stream", latency, STREAM_CONCURRENCY)
        progress(f"streams: {latency} ms upstream, concurrency {STREAM_CONCURRENCY}")
        for target in targets:

            def run(seconds: float, url: str = target.url) -> loadgen.Run:
                return asyncio.run(
                    loadgen.run_clients(
                        url, data, STREAM_CONCURRENCY, seconds=seconds, max_requests=10**7
                    )
                )

            run(plan.warm_seconds)
            before = target.usage()
            done = run(plan.cell_seconds)
            after = target.usage()
            result = done.result(first_byte=True)
            out.append(Measured(cell, target.name, result, cpu_us(before, after, result.requests)))
    return out


def failover_rows(
    plan: Plan, fleet: FleetProcess, target: Target, models: Mapping[str, str]
) -> list[Failover]:
    """The three failover scenarios against one gateway; `models` names the model a
    client asks for in each."""
    primary, backup = fleet.urls["primary"], fleet.urls["backup"]
    set_latency(fleet, FAILOVER_LATENCY_MS)
    rows = []
    for scenario in (HEALTHY, DOWN, MIXED):
        progress(f"failover: {target.name}, {scenario}")
        data = body(models[scenario])

        def run(requests: int, seconds: float, data: bytes = data) -> loadgen.Run:
            return asyncio.run(
                loadgen.run_clients(
                    target.url,
                    data,
                    FAILOVER_CONCURRENCY,
                    seconds=seconds,
                    max_requests=requests,
                    attempts_of=target.attempts_of,
                )
            )

        notes = []
        if scenario == MIXED:
            script = {"faults": mixed_script(FAILOVER_LATENCY_MS), "model": "flaky"}
            control(primary, "POST", "script", script)
        else:
            run(FAILOVER_WARMUP, FAILOVER_WARMUP_SECONDS)  # opens connections, and breakers
        if scenario == DOWN and target.name == BASTION:
            notes.append(f"breaker {breaker_of(target.root, 'dead')} at start")
        for url in (primary, backup):
            control(url, "DELETE", "attempts")
        done = run(plan.failover_requests, plan.failover_seconds)
        logged = [len(control(url, "GET", "attempts")["attempts"]) for url in (primary, backup)]
        if scenario == MIXED:
            left = sum(control(primary, "GET", "attempts")["queued"].values())
            control(primary, "DELETE", "script")
            notes.append(f"{MIX_LENGTH - left:,} of the scripted answers used")
            notes += [] if left else ["the script RAN OUT"]
            if target.name == BASTION:
                notes.append(f"breaker {breaker_of(target.root, 'flaky')} at end")
        requests = len(done.outcomes)
        rows.append(
            Failover(
                target.name,
                scenario,
                done.result(),
                sum(logged) / requests if requests else None,
                done.attempts_per_request(),
                "; ".join(notes),
            )
        )
    return rows


def soak(plan: Plan, target: Target, fleet: FleetProcess) -> Soak:
    """wrk at concurrency 16 for the soak's length while RSS is read every second."""
    set_latency(fleet, 0)
    progress(f"soak: {plan.soak_seconds} s against {target.name}")
    samples = []
    with ThreadPoolExecutor(max_workers=1) as pool:
        started = time.perf_counter()
        running = pool.submit(
            loadgen.run_wrk, target.url, body(), SOAK_CONCURRENCY, plan.soak_seconds
        )
        while not running.done():
            usage = target.usage()
            if usage is not None:
                samples.append((time.perf_counter() - started, usage.rss_kib))
            wait([running], timeout=1.0)
        result = running.result()
    return Soak(float(plan.soak_seconds), result, tuple(samples))


def profile(plan: Plan, fleet: FleetProcess, targets: Sequence[Target]) -> list[str]:
    """py-spy on each target while wrk drives it at concurrency 16, 0 ms upstream."""
    set_latency(fleet, 0)
    lines = []
    for target in targets:
        progress(f"profile: {target.name}")
        recording = spy.record(target.pid, plan.profile_seconds)
        loadgen.run_wrk(target.url, body(), PROFILE_CONCURRENCY, plan.profile_seconds + 1)
        found = recording.collect(timeout=plan.profile_seconds + 30)
        lines += [f"{target.name}:", *spy.summary(found, top=25)]
    return lines
