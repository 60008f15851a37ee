"""`bastion demo`: the Router over a simulated fleet while the primary fails and heals.

Offline, no keys: three fake upstreams on loopback, a steady mix of plain and
streaming requests, and a live view of where the traffic goes.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter

from rich.console import Console
from rich.live import Live

from bastion.demo.scenario import ANSWER, ENDPOINTS, PHASES, apply, demo_config
from bastion.demo.stats import DemoStats
from bastion.demo.view import render, summary
from bastion.observability.events import Event
from bastion.routing import Router
from bastion.testing import FakeUpstream, Fleet
from bastion.types import StreamError, TextDelta, chat

QUESTION = "How does Bastion keep answering?"


async def _one(router: Router, stats: DemoStats, n: int) -> None:
    started = time.perf_counter()
    stream = n % 2 == 0
    try:
        if stream:
            events = router.stream(chat(QUESTION))
            text = ""
            broken = False
            async for event in events:
                if isinstance(event, TextDelta):
                    text += event.text
                elif isinstance(event, StreamError):
                    broken = True
            ok = not broken and (text == ANSWER or events.degraded)
            stats.finish(
                ok,
                time.perf_counter() - started,
                events.endpoint,
                len(events.attempts),
                events.degraded,
                stream=True,
                seams=events.seams,
            )
        else:
            answer = await router.complete(chat(QUESTION))
            ok = answer.text == ANSWER or answer.degraded
            stats.finish(
                ok,
                time.perf_counter() - started,
                answer.endpoint,
                len(answer.attempts),
                answer.degraded,
                stream=False,
            )
    except Exception as exc:
        stats.finish(False, time.perf_counter() - started, None, 0, False, stream=stream)
        stats.note(f"request {n} failed: {type(exc).__name__}")


async def _traffic(router: Router, stats: DemoStats, duration: float, rate: float) -> None:
    interval = 1.0 / rate
    tasks: set[asyncio.Task[None]] = set()
    start = time.monotonic()
    n = 0
    while (elapsed := time.monotonic() - start) < duration:
        phase = max((p for p in PHASES if p.start * duration <= elapsed), key=lambda p: p.start)
        stats.phase(phase.title)
        task = asyncio.create_task(_one(router, stats, n))
        tasks.add(task)
        task.add_done_callback(tasks.discard)
        n += 1
        await asyncio.sleep(max(0.0, start + n * interval - time.monotonic()))
    await asyncio.gather(*tasks)


async def _scenario(fleet: Fleet, stats: DemoStats, duration: float) -> None:
    start = time.monotonic()
    for phase in PHASES:
        await asyncio.sleep(max(0.0, start + phase.start * duration - time.monotonic()))
        apply(phase, fleet)
        stats.note(f"t={time.monotonic() - start:4.1f}s  {phase.title}")


async def run_demo(*, duration: float = 24.0, rate: float = 40.0, live: bool = True) -> int:
    """Run the demo; returns a process exit code (0 when every request was answered)."""
    console = Console()
    upstreams = [
        FakeUpstream(name, text=ANSWER, chunk_chars=12, chunk_delay=0.004) for name, _ in ENDPOINTS
    ]
    async with Fleet(upstreams) as fleet:
        stats = DemoStats()

        def on_event(event: Event) -> None:
            stats.event(event)

        async with Router.from_config(demo_config(fleet), hooks=[on_event]) as router:
            work = asyncio.gather(
                _traffic(router, stats, duration, rate), _scenario(fleet, stats, duration)
            )
            if live:
                with Live(render(stats, router), console=console, refresh_per_second=6) as view:
                    while not work.done():
                        view.update(render(stats, router))
                        await asyncio.sleep(0.15)
                    view.update(render(stats, router))
            await work
        upstream_calls = Counter(a.upstream for a in fleet.attempts)
    console.print(summary(stats, upstream_calls))
    return 0 if stats.failed == 0 else 1
