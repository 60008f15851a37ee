"""`bastion serve`: run the gateway, one process or N on one port.

With `--workers N` each worker is its own process with its own event loop, binding the
same port with SO_REUSEPORT so the kernel spreads connections over them (one per core
is the point). Until shared state lands, each worker keeps its own breaker, health
and rate-limit state.
"""

from __future__ import annotations

import asyncio
import gc
import multiprocessing
import os
import signal
import sys
from collections.abc import Callable, Coroutine
from pathlib import Path

import structlog
from aiohttp import web

from bastion.agents.configure import plan_agents
from bastion.config import ConfigError, load_config
from bastion.observability.logging import configure_logging
from bastion.server.app import create_app
from bastion.server.gateway import Gateway
from bastion.server.protocol import make_runner

_log = structlog.get_logger("bastion.server")

# `bastion serve --loop`: asyncio's own loop, uvloop, or uvloop when it is installed.
LOOPS = ("auto", "asyncio", "uvloop")


async def serve_once(
    config_path: Path,
    host: str | None,
    port: int | None,
    *,
    reuse_port: bool = False,
    worker: int | None = None,
) -> None:
    """Serve until SIGINT/SIGTERM; reload the config on SIGHUP. `worker` is this
    process's index among `--workers N` (its replica id; see `Gateway`)."""
    configure_logging(json=os.environ.get("BASTION_LOG_FORMAT") == "json")
    config = load_config(config_path)
    gateway = Gateway(config, source=config_path, port=port, worker=worker)
    app = create_app(gateway)
    settings = config.server
    runner = make_runner(app, settings)
    await runner.setup()
    site = web.TCPSite(
        runner,
        host or settings.host,
        port if port is not None else settings.port,
        reuse_port=reuse_port or None,
    )
    await site.start()
    # Everything alive now (modules, config, the app) lives as long as the process: take
    # it out of the collector's reach, or each full collection walks ~66k objects, which
    # measured as 19–36 ms pauses and most of the gateway's p99 (docs/benchmarks.md).
    gc.collect()
    gc.freeze()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    loop.add_signal_handler(signal.SIGHUP, lambda: loop.create_task(gateway.reload_from_source()))
    for address in runner.addresses:
        print(f"bastion listening on http://{address[0]}:{address[1]}", flush=True)
    await stop.wait()
    # Readiness fails first, then the listener closes and streams in flight get
    # drain_timeout to finish before they are cancelled.
    gateway.ready = False
    gateway.stopping = True
    await runner.cleanup()


def loop_factory(loop: str) -> Callable[[], asyncio.AbstractEventLoop] | None:
    """The event loop `--loop` names: None for asyncio's own; uvloop's for "uvloop", and
    for "auto" when it is installed. ValueError if "uvloop" is asked for and missing."""
    if loop not in LOOPS:
        raise ValueError(f"unknown event loop {loop!r} (expected one of {', '.join(LOOPS)})")
    if loop == "asyncio":
        return None
    try:
        import uvloop
    except ImportError as exc:
        if loop == "auto":
            return None
        raise ValueError("--loop uvloop needs uvloop: pip install 'bastion[fast]'") from exc
    return uvloop.new_event_loop


def _run(main: Coroutine[None, None, None], loop: str) -> None:
    with asyncio.Runner(loop_factory=loop_factory(loop)) as runner:
        runner.run(main)


def _worker(config_path: str, host: str | None, port: int | None, loop: str, index: int) -> None:
    _run(serve_once(Path(config_path), host, port, reuse_port=True, worker=index), loop)


def serve(
    config_path: str, host: str | None, port: int | None, workers: int, *, loop: str = "auto"
) -> int:
    """Run the gateway; 2 on a config error or an event loop that is not installed."""
    path = Path(config_path)
    try:
        plan_agents(load_config(path))  # the agents' tools import, too
        loop_factory(loop)
    except (ConfigError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if workers <= 1:
        _run(serve_once(path, host, port), loop)
        return 0
    if (port if port is not None else load_config(path).server.port) == 0:
        print("error: --workers needs a fixed --port (or server.port)", file=sys.stderr)
        return 2
    context = multiprocessing.get_context("spawn")
    children = [
        context.Process(target=_worker, args=(config_path, host, port, loop, i), daemon=False)
        for i in range(workers)
    ]
    for child in children:
        child.start()

    def forward(sig: int, _frame: object) -> None:
        for child in children:
            if child.pid is not None and child.is_alive():
                os.kill(child.pid, sig)

    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, forward)
    for child in children:
        child.join()
    return max((child.exitcode or 0) for child in children)
