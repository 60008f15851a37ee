"""Helpers shared by the benchmarks: the fake fleet in its own process, CPU pinning,
measuring and profiling one cell, the results table, and describing the machine.

The fleet runs in a separate process so that `time.process_time()` in the benchmark
process counts only the client side of every call.
"""

from __future__ import annotations

import asyncio
import contextlib
import cProfile
import gc
import json
import os
import platform
import pstats
import queue
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Awaitable, Callable, Iterator, Sequence
from dataclasses import dataclass
from importlib import metadata
from typing import Any

from rich.console import Console
from rich.table import Table

# Starting a Python process and binding a port takes well under a second; this bound
# only matters when something is badly wrong.
FLEET_START_TIMEOUT = 20.0
# The fleet stops on SIGTERM within its own 1 s shutdown timeout; then it is killed.
FLEET_STOP_TIMEOUT = 5.0

Call = Callable[[], Awaitable[str]]
# A profiled function: (file, first line, name), as `pstats` keys it.
Where = tuple[str, int, str]


@dataclass(frozen=True, slots=True)
class Pinning:
    """Which core each side runs on, or None when pinning is not possible here."""

    bench_core: int
    fleet_core: int

    def describe(self) -> str:
        return f"benchmark pinned to core {self.bench_core}, fleet to core {self.fleet_core}"


def plan_pinning() -> Pinning | None:
    """Two distinct cores from this process's allowed set, when the OS lets us pin."""
    if not hasattr(os, "sched_setaffinity"):
        return None
    cores = sorted(os.sched_getaffinity(0))
    if len(cores) < 2:
        return None
    return Pinning(bench_core=cores[0], fleet_core=cores[1])


@contextlib.contextmanager
def pinned(core: int | None) -> Iterator[None]:
    """Run this process on `core` (no-op for None); the old affinity comes back after."""
    if core is None:
        yield
        return
    before = os.sched_getaffinity(0)
    os.sched_setaffinity(0, {core})
    try:
        yield
    finally:
        os.sched_setaffinity(0, before)


@contextlib.contextmanager
def fleet_process(name: str, *, core: int | None = None) -> Iterator[str]:
    """Run `python -m bastion.testing --upstream NAME=0` and yield its base URL."""
    with fleet_processes((name,), core=core) as fleet:
        yield fleet.urls[name]


@dataclass(frozen=True, slots=True)
class FleetProcess:
    """A running fleet: its process id (for CPU and memory readings) and base URLs."""

    pid: int
    urls: dict[str, str]


@contextlib.contextmanager
def fleet_processes(names: Sequence[str], *, core: int | None = None) -> Iterator[FleetProcess]:
    """Run `python -m bastion.testing --upstream NAME=0 ...`, one upstream per name.

    Port 0 lets the fleet pick a free port (no race between choosing and binding).
    The fleet gets its own session so that a Ctrl-C reaches only the benchmark, which
    then stops the fleet itself, after its own calls have ended; it is terminated
    however the block ends, and killed if it does not stop in time.
    """
    args = [sys.executable, "-m", "bastion.testing"]
    for name in names:
        args += ["--upstream", f"{name}=0"]
    with tempfile.TemporaryFile() as errors:
        proc = subprocess.Popen(
            args, stdout=subprocess.PIPE, stderr=errors, text=True, start_new_session=True
        )
        try:
            if core is not None:
                os.sched_setaffinity(proc.pid, {core})
            line = _read_line(proc, FLEET_START_TIMEOUT)
            if not line:
                errors.seek(0)
                detail = errors.read().decode(errors="replace").strip()
                raise RuntimeError(f"the fleet did not start: {detail or 'no output'}")
            yield FleetProcess(proc.pid, json.loads(line))
        finally:
            stop_process(proc)


def _read_line(proc: subprocess.Popen[str], timeout: float) -> str:
    # A thread makes the read bounded on every platform (select() on pipes is POSIX only).
    lines: queue.Queue[str] = queue.Queue(maxsize=1)
    assert proc.stdout is not None
    stdout = proc.stdout
    threading.Thread(target=lambda: lines.put(stdout.readline()), daemon=True).start()
    try:
        return lines.get(timeout=timeout)
    except queue.Empty:
        return ""


def stop_process(proc: subprocess.Popen[Any], timeout: float = FLEET_STOP_TIMEOUT) -> None:
    """SIGTERM, a bounded wait, then SIGKILL: a benchmark never leaves a process behind."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    if proc.stdout is not None:
        proc.stdout.close()


@dataclass(frozen=True, slots=True)
class Sample:
    """One cell of one round: CPU seconds per call and calls per wall-clock second."""

    cpu_per_call: float
    rps: float


async def drive(call: Call, calls: int, concurrency: int) -> None:
    """`calls` calls by `concurrency` workers, each starting its next call as soon as
    its previous one ends (a closed loop: the offered load follows the service)."""
    left = calls

    async def worker() -> None:
        nonlocal left
        while left > 0:
            left -= 1
            await call()

    await asyncio.gather(*(worker() for _ in range(concurrency)))


class GcWatch:
    """Counts the garbage collector's runs and the CPU they take, while entered."""

    def __init__(self) -> None:
        self.collections = 0
        self.seconds = 0.0
        self._started = 0.0

    def _callback(self, phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            self._started = time.process_time()
        else:
            self.collections += 1
            self.seconds += time.process_time() - self._started

    def __enter__(self) -> GcWatch:
        gc.callbacks.append(self._callback)
        return self

    def __exit__(self, *exc_info: object) -> None:
        gc.callbacks.remove(self._callback)


async def measure(
    call: Call,
    calls: int,
    concurrency: int,
    *,
    warmup: int,
    limit: float,
    watch: GcWatch | None = None,
) -> Sample:
    """Warm up (connections opened to `concurrency`, caches filled), then time `calls`.

    Garbage left by the previous cell is collected first so that it is not charged
    to this one; collections caused by this cell's own garbage are its cost (`watch`,
    if given, counts them). `limit` bounds the cell's wall-clock time.
    """
    async with asyncio.timeout(limit):
        await drive(call, max(warmup, concurrency), concurrency)
        gc.collect()
        with watch or contextlib.nullcontext():
            cpu, wall = time.process_time(), time.perf_counter()
            await drive(call, calls, concurrency)
            cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
    return Sample(cpu_per_call=cpu / calls, rps=calls / wall)


async def own_times(
    call: Call, calls: int, concurrency: int, *, warmup: int, limit: float
) -> dict[Where, float]:
    """Each function's own CPU seconds (not its callees') over one profiled cell."""
    profiler = cProfile.Profile()
    profiler.enable()
    try:
        await measure(call, calls, concurrency, warmup=warmup, limit=limit)
    finally:
        profiler.disable()
    stats = pstats.Stats(profiler).stats  # type: ignore[attr-defined]
    return {where: row[2] for where, row in stats.items()}


_BENCH_DIR = os.path.dirname(os.path.abspath(__file__))
# Where extra time can come from, most specific first; the first marker in a path wins.
_AREAS = (
    ("/bastion/routing/", "bastion.routing"),
    ("/bastion/resilience/", "bastion.resilience"),
    ("/bastion/observability/", "bastion.observability"),
    ("/asyncio/", "asyncio"),
    ("dataclasses.py", "dataclasses"),
)


def extra_time(
    base: dict[Where, float], other: dict[Where, float], calls: int, *, top: int
) -> list[str]:
    """What `other` spends per call beyond `base`, by area and by function.

    Functions both sides run (the HTTP client, the event loop) mostly cancel out; what
    remains of them is noise and is summed as "elsewhere". `bench/` itself is left out:
    each client has its own one-line wrapper there.
    """
    extra = {
        where: seconds - base.get(where, 0.0)
        for where, seconds in other.items()
        if os.path.dirname(where[0]) != _BENCH_DIR
    }
    areas: dict[str, float] = {}
    for (path, _, name), seconds in extra.items():
        area = next((a for marker, a in _AREAS if marker in path), "elsewhere")
        if area == "elsewhere" and name.startswith("<built-in"):
            area = "builtins"
        areas[area] = areas.get(area, 0.0) + seconds
    us = 1e6 / calls
    lines = [f"  total {sum(extra.values()) * us:+.1f} µs/call; by area: "]
    lines[0] += ", ".join(f"{a} {t * us:+.1f}" for a, t in sorted(areas.items(), key=_by_size))
    for (path, line, name), seconds in sorted(extra.items(), key=_by_size)[:top]:
        where = f"{_short_path(path)}:{line}({name})" if line else name
        lines.append(f"  {seconds * us:+7.1f} µs  {where}")
    return lines


def _by_size(item: tuple[object, float]) -> float:
    return -item[1]


def _short_path(path: str) -> str:
    for marker in ("/bastion/", "/asyncio/", "/aiohttp/", "/site-packages/"):
        if marker in path:
            return marker.strip("/") + "/" + path.split(marker, 1)[1]
    return os.path.basename(path)


def machine(packages: Sequence[str] = ("aiohttp", "openai", "orjson")) -> list[str]:
    """Lines describing where the numbers come from, with `packages`' versions."""
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as info:
            names = [ln.split(":", 1)[1].strip() for ln in info if ln.startswith("model name")]
        cpu = names[0] if names else cpu
    except OSError:
        pass
    allowed = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None
    cores = f"{os.cpu_count()} logical cores" + (f" ({allowed} usable)" if allowed else "")
    versions = ", ".join(f"{p} {_version(p)}" for p in packages)
    return [
        f"machine: {cpu}, {cores}, {platform.system()} {platform.release()}",
        f"python: {platform.python_implementation()} {platform.python_version()}; {versions}",
    ]


def _version(package: str) -> str:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return "?"


# --- results ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Cell:
    """What one group of table rows measures: a kind of call at one concurrency."""

    kind: str  # "complete" or "stream"
    concurrency: int


@dataclass(frozen=True, slots=True)
class Row:
    cell: Cell
    client: str
    cpu_us: float  # median over rounds
    overhead_us: float | None  # None for the baseline itself
    rps: float  # median over rounds
    spread_us: tuple[float, float]  # min and max CPU µs/call over the rounds


def summarize(
    cells: Sequence[Cell],
    names: dict[Cell, list[str]],
    samples: dict[tuple[Cell, str], list[Sample]],
    *,
    baseline: str,
) -> list[Row]:
    """One row per cell and client. The overhead is the median of per-round differences
    from the baseline: each pair was measured moments apart, so drift cancels."""
    rows = []
    for cell in cells:
        base = samples[(cell, baseline)]
        for name in names[cell]:
            mine = samples[(cell, name)]
            cpu = [s.cpu_per_call * 1e6 for s in mine]
            overhead = None
            if name != baseline:
                pairs = zip(mine, base, strict=True)
                overhead = statistics.median(
                    (m.cpu_per_call - b.cpu_per_call) * 1e6 for m, b in pairs
                )
            rps = statistics.median(s.rps for s in mine)
            rows.append(
                Row(cell, name, statistics.median(cpu), overhead, rps, (min(cpu), max(cpu)))
            )
    return rows


def _overhead(row: Row) -> str:
    return "—" if row.overhead_us is None else f"{row.overhead_us:+.0f}"


def print_table(rows: Sequence[Row], console: Console, *, title: str) -> None:
    table = Table(title=title)
    for name in ("concurrency", "call", "client", "CPU µs/call", "overhead vs bare (µs)", "RPS"):
        table.add_column(name, justify="left" if name in ("call", "client") else "right")
    table.add_column("CPU µs, min–max", justify="right", style="dim")
    for row in rows:
        table.add_row(
            str(row.cell.concurrency),
            row.cell.kind,
            row.client,
            f"{row.cpu_us:.0f}",
            _overhead(row),
            f"{row.rps:,.0f}",
            f"{row.spread_us[0]:.0f}–{row.spread_us[1]:.0f}",
        )
    console.print(table)


def markdown(rows: Sequence[Row]) -> str:
    """The same table, to paste into docs/benchmarks.md."""
    lines = [
        "| concurrency | call | client | CPU µs/call | overhead vs bare (µs) | RPS |",
        "|---:|---|---|---:|---:|---:|",
    ]
    lines += [
        f"| {r.cell.concurrency} | {r.cell.kind} | {r.client} | {r.cpu_us:.0f} "
        f"| {_overhead(r)} | {r.rps:,.0f} |"
        for r in rows
    ]
    return "\n".join(lines)
