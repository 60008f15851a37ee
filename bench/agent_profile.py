"""Where the agent benchmark's time goes: cProfile own-times, grouped by area.

Split from `agent_turn.py`; run through `python -m bench.agent_turn --profile`.
"""

from __future__ import annotations

import cProfile
import os
import pstats

from bench.agent_peers import Turn

FLOOR = "hand-written loop"
BASTION = "Bastion Agent.generate"
BASTION_MEMORY = "Bastion Agent.generate + SQLite memory"
TOP_FUNCTIONS = 15
_BENCH_DIR = os.path.dirname(os.path.abspath(__file__))


Where = tuple[str, int, str]  # (file, first line, function), as `pstats` keys it


async def own_times(turn: Turn, turns: int, warmup: int) -> dict[Where, tuple[int, float]]:
    """Each function's calls and own seconds (not its callees') over `turns` turns.

    The profiler's clock is its default, wall-clock time: reading the process's CPU
    time costs a system call, which would inflate every function tenfold. Without I/O
    the two agree; with SQLite, `epoll.poll` is the wait for the store's worker thread."""
    for _ in range(warmup):
        await turn()
    profiler = cProfile.Profile()
    profiler.enable()
    try:
        for _ in range(turns):
            await turn()
    finally:
        profiler.disable()
    stats = pstats.Stats(profiler).stats  # type: ignore[attr-defined]
    return {where: (row[1], row[2]) for where, row in stats.items()}


def _area(path: str, name: str) -> str:
    if "/bastion/" in path:
        return "bastion." + path.split("/bastion/", 1)[1].split("/", 1)[0].removesuffix(".py")
    if "/asyncio/" in path:
        return "asyncio"
    return "builtins" if name.startswith("<built-in") else "elsewhere"


def _short(path: str) -> str:
    for marker in ("/bastion/", "/asyncio/", "/site-packages/"):
        if marker in path:
            return marker.strip("/") + "/" + path.split(marker, 1)[1]
    return os.path.basename(path)


async def profile(rows: dict[str, Turn], turns: int, warmup: int) -> list[str]:
    """Where each Bastion row spends its time beyond the hand-written loop (cProfile
    own time: the profiler inflates the totals, the ranking holds)."""
    floor = await own_times(rows[FLOOR], turns, warmup)
    lines = []
    for name in (BASTION, BASTION_MEMORY):
        mine = await own_times(rows[name], turns, warmup)
        extra = {
            where: (calls, seconds - floor.get(where, (0, 0.0))[1])
            for where, (calls, seconds) in mine.items()
            if os.path.dirname(where[0]) != _BENCH_DIR
        }
        areas: dict[str, float] = {}
        for (path, _, fn), (_, seconds) in extra.items():
            areas[_area(path, fn)] = areas.get(_area(path, fn), 0.0) + seconds
        us = 1e6 / turns
        total = sum(seconds for _, seconds in extra.values())
        by_area = ", ".join(f"{a} {t * us:+.1f}" for a, t in sorted(areas.items(), key=_size))
        lines.append(f"{name}, beyond the {FLOOR} (cProfile own time per turn):")
        lines.append(f"  total {total * us:+.1f} µs; by area: {by_area}")
        hops = sum(calls for key, (calls, _) in mine.items() if _is_thread_hop(key))
        if hops:
            lines.append(f"  {hops / turns:.1f} requests to SQLite's worker thread per turn")
        for (path, line, fn), (calls, seconds) in sorted(extra.items(), key=_own)[:TOP_FUNCTIONS]:
            where = f"{_short(path)}:{line}({fn})" if line else fn
            lines.append(f"  {seconds * us:+7.1f} µs  {calls / turns:5.1f} calls  {where}")
    return lines


def _is_thread_hop(key: tuple[str, int, str]) -> bool:
    """The SQLite store hands each operation to its thread with one executor submit."""
    path, _, fn = key
    return fn == "submit" and path.endswith("concurrent/futures/thread.py")


def _own(item: tuple[object, tuple[int, float]]) -> float:
    return -item[1][1]


def _size(item: tuple[object, float]) -> float:
    return -item[1]
