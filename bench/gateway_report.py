"""The gateway benchmark's results: what was measured, the markdown tables, the goals.

Kept apart from the run (`bench.gateway`) so that the tables and the verdicts read
as plain functions of the numbers.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence
from dataclasses import dataclass, field

from bench.loadgen import Result

DIRECT, BARE, BASTION, LITELLM = "direct", "bare proxy", "bastion", "litellm"
# The goals this benchmark reports against.
RPS_SHARE = 0.8  # Bastion's RPS at concurrency 64, as a share of the bare proxy's
ADDED_P50_MS = 1.0  # p50 latency Bastion may add over direct, at concurrency 1
DOWN_P50_MS = 2.0  # primary down, breaker open: p50 within this of a healthy upstream
START_S = 1.0  # spawn to the first 200 from /api/v1/health
FLAT_SOAK_S = 300.0  # the memory goal is judged on a soak at least this long
# "Flat": the soak's second half grows RSS by no more than this, or 1 % of RSS.
FLAT_KIB = 1024


@dataclass(frozen=True, slots=True)
class Cell:
    kind: str  # "complete" or "stream"
    latency_ms: int  # the fake upstream's latency before it answers
    concurrency: int


@dataclass(frozen=True, slots=True)
class Measured:
    cell: Cell
    target: str
    result: Result  # for streams: the latencies are to the first byte
    cpu_us: float | None  # CPU of the target's process per request, µs


@dataclass(frozen=True, slots=True)
class Failover:
    gateway: str
    scenario: str
    result: Result
    fleet_calls: float | None  # per client request, from the fleet's attempt logs
    reported_calls: float | None  # per client request, from the gateway's headers
    note: str = ""


@dataclass(frozen=True, slots=True)
class Footprint:
    target: str
    idle_kib: int | None  # after start and one request
    peak_kib: int | None  # VmHWM after every cell
    started_in: float | None  # seconds, spawn to healthy


@dataclass(frozen=True, slots=True)
class Soak:
    seconds: float
    result: Result
    samples: tuple[tuple[float, int], ...]  # (seconds since start, RSS KiB)

    @property
    def start_kib(self) -> int:
        return self.samples[0][1]

    @property
    def end_kib(self) -> int:
        return self.samples[-1][1]

    @property
    def slope_kib_per_min(self) -> float:
        """Least-squares slope of RSS over time."""
        if len(self.samples) < 2:
            return 0.0
        times = [t for t, _ in self.samples]
        return statistics.linear_regression(times, [r for _, r in self.samples]).slope * 60

    @property
    def second_half_growth_kib(self) -> int:
        half = [r for t, r in self.samples if t >= self.samples[-1][0] / 2]
        return half[-1] - half[0]

    @property
    def flat(self) -> bool:
        return self.second_half_growth_kib <= max(FLAT_KIB, self.start_kib // 100)


@dataclass(slots=True)
class Report:
    cells: list[Measured] = field(default_factory=list)
    failover: list[Failover] = field(default_factory=list)
    footprints: list[Footprint] = field(default_factory=list)
    bastion_starts: list[float] = field(default_factory=list)
    soak: Soak | None = None
    notes: list[str] = field(default_factory=list)


def _ms(value: float) -> str:
    return "—" if math.isnan(value) else f"{value:.2f}"


def _added(value: float | None) -> str:
    return "—" if value is None or math.isnan(value) else f"{value:+.2f}"


def _mib(kib: int | None) -> str:
    return "—" if kib is None else f"{kib / 1024:.0f}"


def _direct(report: Report, cell: Cell) -> Result | None:
    return next((m.result for m in report.cells if m.cell == cell and m.target == DIRECT), None)


def _find(report: Report, cell: Cell, target: str) -> Measured | None:
    return next((m for m in report.cells if m.cell == cell and m.target == target), None)


def plain_table(report: Report) -> str:
    head = "| upstream latency | concurrency | target | RPS | p50 ms | p99 ms "
    return _table(report, "complete", head)


def stream_table(report: Report) -> str:
    head = "| upstream latency | concurrency | target | streams/s | TTFB p50 ms | TTFB p99 ms "
    return _table(report, "stream", head)


def _table(report: Report, kind: str, head: str) -> str:
    unit = "req" if kind == "complete" else "stream"
    lines = [
        head + f"| added p50 ms | added p99 ms | CPU µs/{unit} | errors |",
        "|---:|---:|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    lines += [
        _row(report, m, f"{m.cell.latency_ms} ms | {m.cell.concurrency}")
        for m in report.cells
        if m.cell.kind == kind
    ]
    return "\n".join(lines)


def _row(report: Report, m: Measured, prefix: str) -> str:
    r, base = m.result, _direct(report, m.cell)
    added50 = added99 = None
    if base is not None and m.target != DIRECT:
        added50, added99 = r.p50_ms - base.p50_ms, r.p99_ms - base.p99_ms
    cpu = "—" if m.cpu_us is None else f"{m.cpu_us:,.0f}"
    return (
        f"| {prefix} | {m.target} | {r.rps:,.0f} | {_ms(r.p50_ms)} | {_ms(r.p99_ms)} "
        f"| {_added(added50)} | {_added(added99)} | {cpu} | {r.errors} |"
    )


def failover_table(report: Report) -> str:
    lines = [
        "| gateway | upstreams | requests | success | p50 ms | p99 ms "
        "| upstream calls/req (fleet log) | attempts/req (gateway headers) | note |",
        "|---|---|---:|---:|---:|---:|---:|---:|---|",
    ]
    for f in report.failover:
        r = f.result
        ok = 1 - r.errors / r.requests if r.requests else math.nan
        fleet = "—" if f.fleet_calls is None else f"{f.fleet_calls:.2f}"
        said = "—" if f.reported_calls is None else f"{f.reported_calls:.2f}"
        lines.append(
            f"| {f.gateway} | {f.scenario} | {r.requests:,} | {ok:.2%} | {_ms(r.p50_ms)} "
            f"| {_ms(r.p99_ms)} | {fleet} | {said} | {f.note} |"
        )
    return "\n".join(lines)


def footprint_table(report: Report) -> str:
    lines = [
        "| target | start to healthy s | RSS idle MiB | RSS peak MiB |",
        "|---|---:|---:|---:|",
    ]
    for f in report.footprints:
        started = "—" if f.started_in is None else f"{f.started_in:.2f}"
        lines.append(f"| {f.target} | {started} | {_mib(f.idle_kib)} | {_mib(f.peak_kib)} |")
    return "\n".join(lines)


def soak_line(soak: Soak) -> str:
    per_request = (soak.end_kib - soak.start_kib) * 1024 / max(soak.result.requests, 1)
    return (
        f"soak: {soak.seconds:.0f} s at concurrency 16, {soak.result.requests:,} requests "
        f"({soak.result.rps:,.0f}/s, {soak.result.errors} errors); RSS {soak.start_kib / 1024:.1f}"
        f" → {soak.end_kib / 1024:.1f} MiB, slope {soak.slope_kib_per_min:+.0f} KiB/min, "
        f"second half {soak.second_half_growth_kib:+d} KiB ({per_request:+.1f} B/request overall)"
    )


# --- the goals --------------------------------------------------------------------------


def verdicts(report: Report) -> list[str]:
    """Each goal, met or missed, with the numbers that decide it."""
    out: list[str] = []
    latencies = sorted({m.cell.latency_ms for m in report.cells if m.cell.kind == "complete"})
    for latency in latencies:
        cell = Cell("complete", latency, 64)
        mine, floor = _find(report, cell, BASTION), _find(report, cell, BARE)
        if mine and floor and floor.result.rps:
            share = mine.result.rps / floor.result.rps
            line = (
                f"{_status(share >= RPS_SHARE)} RPS ≥ {RPS_SHARE:.0%} of the bare proxy at "
                f"concurrency 64, {latency} ms upstream: {mine.result.rps:,.0f} vs "
                f"{floor.result.rps:,.0f} = {share:.0%}"
            )
            if mine.cpu_us and floor.cpu_us:
                # What RPS would be with both CPU-bound: other work on the machine
                # slows a round down, but hardly changes its CPU per request.
                line += (
                    f" (CPU per request {mine.cpu_us:.0f} vs {floor.cpu_us:.0f} µs: "
                    f"{floor.cpu_us / mine.cpu_us:.0%} when both are CPU-bound)"
                )
            out.append(line)
    for latency in latencies:
        cell = Cell("complete", latency, 1)
        mine, base = _find(report, cell, BASTION), _direct(report, cell)
        if mine and base:
            added = mine.result.p50_ms - base.p50_ms
            out.append(
                f"{_status(added <= ADDED_P50_MS)} p50 added ≤ {ADDED_P50_MS:g} ms at "
                f"concurrency 1, {latency} ms upstream: {added:+.2f} ms"
            )
    rows = {f.scenario: f for f in report.failover if f.gateway == BASTION}
    healthy, down = rows.get(HEALTHY), rows.get(DOWN)
    if healthy and down:
        gap = down.result.p50_ms - healthy.result.p50_ms
        out.append(
            f"{_status(gap <= DOWN_P50_MS)} primary down, breaker open: p50 within "
            f"{DOWN_P50_MS:g} ms of a healthy upstream: {down.result.p50_ms:.2f} vs "
            f"{healthy.result.p50_ms:.2f} ms ({gap:+.2f})"
        )
    if report.soak is not None:
        soak = report.soak
        growth = f"second half {soak.second_half_growth_kib:+d} KiB"
        if soak.seconds >= FLAT_SOAK_S:
            out.append(f"{_status(soak.flat)} memory flat over {soak.seconds:.0f} s: {growth}")
        else:
            out.append(
                f"(not judged) memory flat needs --soak {FLAT_SOAK_S:.0f}; "
                f"this {soak.seconds:.0f} s soak: {growth}, "
                f"{'flat' if soak.flat else 'growing'}"
            )
    if report.bastion_starts:
        median = statistics.median(report.bastion_starts)
        out.append(
            f"{_status(median <= START_S)} start to healthy ≤ {START_S:g} s: median "
            f"{median:.2f} s over {len(report.bastion_starts)} starts "
            f"(max {max(report.bastion_starts):.2f})"
        )
    return out


def _status(met: bool) -> str:
    return "MET   " if met else "MISSED"


HEALTHY, DOWN, MIXED = "healthy (one endpoint)", "primary down", "primary 30 % 500s"


def markdown(report: Report, command: str, machine: Sequence[str]) -> str:
    """Everything, as it goes into docs/benchmarks.md."""
    parts = [f"`{command}`", "", *(f"- {line}" for line in machine), ""]
    if any(m.cell.kind == "complete" for m in report.cells):
        parts += ["Plain requests (wrk):", "", plain_table(report), ""]
    if any(m.cell.kind == "stream" for m in report.cells):
        parts += ["Streams (aiohttp client; TTFB = time to first byte):", ""]
        parts += [stream_table(report), ""]
    if report.failover:
        parts += ["Failover (aiohttp client):", "", failover_table(report), ""]
    parts += ["Footprint:", "", footprint_table(report), ""]
    if report.soak is not None:
        parts += [soak_line(report.soak), ""]
    parts += ["Goals:", "", *(f"- {v}" for v in verdicts(report))]
    parts += [f"- note: {n}" for n in report.notes]
    return "\n".join(parts)
