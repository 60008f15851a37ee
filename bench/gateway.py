"""The gateway end to end over HTTP: Bastion beside the upstream itself, the thinnest
aiohttp pass-through proxy (the floor) and, when installed, the LiteLLM proxy.

    python -m bench.gateway [--quick] [--soak SECONDS] [--with-litellm] [--profile]

Each target is its own process on its own port, pinned to core 0; the load generators
(wrk for plain requests, an aiohttp client for streams and failover) and the fake
upstream fleet share core 1. The targets: direct (the fake upstream itself); bare proxy
(`bench/bare_proxy.py`); bastion (`bastion serve`, no auth, health checks off); litellm
(`litellm --config FILE`, from bench/.litellm-venv, see `bench/peers.py`).

Plain requests: wrk for each upstream latency (0, 50 ms) × concurrency (1, 16, 64) ×
target, after a short untimed warm-up; within a cell the targets run back to back in
2 rounds of 3 s, the order rotating, and each keeps its best round. "added" is a
target's percentile minus direct's in the same cell. CPU per request: the target
process's CPU time over the cell (schedstat, in ns) divided by the requests answered.
Streams: time to first byte at concurrency 16.

Failover, at concurrency 16 and 50 ms upstream latency (the gateway is not saturated,
so p50 reads as latency, not queueing): a healthy endpoint; a primary whose connections
are all reset, after a warm-up that opens its breaker; a primary answering 500 to a
seeded-random 30 % of requests. Upstream calls are counted from the fleet's attempt
logs. Then start to healthy, RSS idle and peak, and a soak sampling Bastion's RSS
every second. Speed is measured and reported here, never asserted.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from dataclasses import replace
from pathlib import Path

import yaml

from bench import loadgen, peers, spy
from bench._common import FleetProcess, fleet_processes, machine, pinned, plan_pinning
from bench.gateway_cells import (
    DEFAULT,
    FAILOVER_MODELS,
    QUICK,
    Plan,
    failover_rows,
    plain_cells,
    profile,
    progress,
    soak,
    stream_cells,
)
from bench.gateway_report import BARE, BASTION, DIRECT, LITELLM, Footprint, Report, markdown
from bench.gateway_targets import (
    Target,
    bare_proxy_server,
    bastion_attempts,
    bastion_config,
    bastion_server,
    break_dead,
    check_answers,
    http_target,
    litellm_config,
)

# --- the run ------------------------------------------------------------------------------


@contextlib.contextmanager
def started_targets(
    args: argparse.Namespace, fleet: FleetProcess, directory: Path, core: int | None
) -> Iterator[tuple[list[Target], dict[str, float]]]:
    """Every target, healthy and checked; and how long each took to start."""
    with contextlib.ExitStack() as stack:
        primary = fleet.urls["primary"]
        config = directory / "bastion.yaml"
        config.write_text(yaml.safe_dump(bastion_config(fleet.urls)))
        bare = stack.enter_context(bare_proxy_server(primary, core))
        bastion = stack.enter_context(bastion_server(config, core))
        servers = [bare, bastion]
        targets = [
            http_target(DIRECT, primary.removesuffix("/v1"), fleet.pid),
            http_target(BARE, bare.url, bare.pid),
            http_target(BASTION, bastion.url, bastion.pid, bastion_attempts),
        ]
        if peers.litellm_installed() and not args.no_litellm:
            progress("starting litellm (it imports for several seconds)")
            config_data = litellm_config(fleet.urls)
            servers.append(
                stack.enter_context(peers.litellm_server(config_data, directory, core=core))
            )
            targets.append(http_target(LITELLM, servers[-1].url, servers[-1].pid))
        check_answers(targets)
        yield targets, {s.name: s.started_in for s in servers}


def run(args: argparse.Namespace, plan: Plan, report: Report) -> list[str]:
    """Everything, in one fleet; returns the profile's lines (if asked for)."""
    pinning = plan_pinning()
    sut = pinning.bench_core if pinning else None
    load = pinning.fleet_core if pinning else None
    with (
        pinned(load),  # this process is the aiohttp load generator; wrk inherits the core
        fleet_processes(("primary", "backup"), core=load) as fleet,
        tempfile.TemporaryDirectory(prefix="bench-gateway-") as tmp,
    ):
        directory = Path(tmp)
        (directory / "bastion.yaml").write_text(yaml.safe_dump(bastion_config(fleet.urls)))
        for _ in range(plan.start_samples - 1):  # extra starts, for the median
            with bastion_server(directory / "bastion.yaml", sut) as server:
                report.bastion_starts.append(server.started_in)
        break_dead(fleet)
        with started_targets(args, fleet, directory, sut) as (targets, started_in):
            report.bastion_starts.append(started_in[BASTION])
            idle = {t.name: t.usage() for t in targets}
            if loadgen.wrk_path():
                report.cells += plain_cells(plan, fleet, targets)
            else:
                report.notes.append(loadgen.WRK_HINT + "; plain requests and soak skipped")
            report.cells += stream_cells(plan, fleet, targets)
            for target in targets:
                if target.name in FAILOVER_MODELS:
                    models = FAILOVER_MODELS[target.name]
                    report.failover += failover_rows(plan, fleet, target, models)
            for target in targets[1:]:  # not direct: the fake's footprint says nothing
                before, now = idle[target.name], target.usage()
                report.footprints.append(
                    Footprint(
                        target.name,
                        before.rss_kib if before else None,
                        now.peak_kib if now else None,
                        started_in.get(target.name),
                    )
                )
            lines = profile(plan, fleet, targets[1:3]) if args.profile else []
            if loadgen.wrk_path() and plan.soak_seconds > 0:
                report.soak = soak(plan, targets[2], fleet)
            return lines


# --- entry point --------------------------------------------------------------------------


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.gateway", description=__doc__)
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    parser.add_argument(
        "--quick", action="store_true", help="shorter cells, one round (~2.5 minutes)"
    )
    parser.add_argument("--soak", type=int, default=None, help="soak seconds (300: the goal)")
    parser.add_argument(
        "--with-litellm", action="store_true", help="install LiteLLM first if missing (minutes)"
    )
    parser.add_argument("--no-litellm", action="store_true", help="leave LiteLLM out")
    parser.add_argument("--profile", action="store_true", help="py-spy Bastion and the bare proxy")
    args = parser.parse_args(argv)
    if args.soak is not None and not 0 <= args.soak <= 3600:
        parser.error("--soak must be between 0 and 3600 seconds")  # bounded: a typo is not a day
    return args


def command(args: argparse.Namespace) -> str:
    python = os.path.relpath(sys.executable)
    python = sys.executable if python.startswith("..") else python
    flags = [
        flag
        for flag, on in (
            ("--quick", args.quick),
            (f"--soak {args.soak}", args.soak is not None),
            ("--with-litellm", args.with_litellm),
            ("--no-litellm", args.no_litellm),
            ("--profile", args.profile),
        )
        if on
    ]
    return " ".join([python, "-m", "bench.gateway", *flags])


def describe(args: argparse.Namespace) -> list[str]:
    pinning = plan_pinning()
    lines = [*machine()]
    lines.append(
        f"targets pinned to core {pinning.bench_core}; load generators and fake upstream to "
        f"core {pinning.fleet_core}"
        if pinning
        else "not pinned (needs Linux and ≥ 2 cores): numbers mix both sides"
    )
    if hasattr(os, "getloadavg"):
        # Other work on the machine shows in every number; say how much there was.
        lines.append(f"load average before the run: {os.getloadavg()[0]:.2f} (1 min)")
    wrk = loadgen.wrk_path()
    lines.append(f"wrk: {wrk}" if wrk else loadgen.WRK_HINT)
    if peers.litellm_installed() and not args.no_litellm:
        lines.append(f"litellm {peers.litellm_version()} (bench/.litellm-venv)")
    else:
        lines.append(
            "litellm: left out — " + ("--no-litellm" if args.no_litellm else peers.LITELLM_HINT)
        )
    return lines


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    plan = QUICK if args.quick else DEFAULT
    if args.soak is not None:
        plan = replace(plan, soak_seconds=args.soak)
    if args.with_litellm and not peers.litellm_installed():
        progress("installing litellm[proxy] into bench/.litellm-venv (a few minutes)")
        peers.install_litellm()
    if args.profile and spy.spy_path() is None:
        print(spy.SPY_HINT, file=sys.stderr)
        return 2
    head = [f"command: {command(args)}", *describe(args)]
    for line in head:
        print(line, flush=True)
    report = Report()
    started = time.perf_counter()
    try:
        profile_lines = run(args, plan, report)
    except KeyboardInterrupt:
        print("interrupted; every process the benchmark started was stopped")
        return 130
    print()
    print(markdown(report, command(args), head[1:]))
    if profile_lines:
        print("\nprofile (py-spy, own time = innermost frame):")
        print("\n".join(profile_lines))
    print(f"\nrun time: {time.perf_counter() - started:.0f} s", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
