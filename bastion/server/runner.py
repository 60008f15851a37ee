"""`bastion serve`: run the gateway, one process or N on one port.

With `--workers N` a supervisor (`workers.supervisor`) starts N worker processes, each
with its own event loop, binding the same port with SO_REUSEPORT so the kernel spreads
connections over them (one per core is the point). It restarts a worker that dies, and
control-plane writes (config PUT, isolation) reach every worker before they answer;
the metrics page and the event stream cover all workers. Breakers, health, outlier
ejection and rate limits stay per worker until shared state lands.

A start that cannot succeed (a bad flag, a config error, a port taken, a memory store
that will not open) is one line on stderr starting with `error:` and exit code 2.
"""

from __future__ import annotations

import asyncio
import gc
import os
import signal
import sys
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import TYPE_CHECKING

import structlog
from aiohttp import web

from bastion.agents.configure import plan_agents
from bastion.config import BastionConfig, load_config
from bastion.memory.check import check_store, redact_url
from bastion.observability.logging import configure_logging
from bastion.server.app import create_app
from bastion.server.gateway import Gateway
from bastion.server.protocol import make_runner

if TYPE_CHECKING:
    from bastion.server.workers.worker import WorkerLink

_log = structlog.get_logger("bastion.server")

# `bastion serve --loop`: asyncio's own loop, uvloop, or uvloop when it is installed.
LOOPS = ("auto", "asyncio", "uvloop")
# The exit code of a start that failed (bad flags, config, port, store).
EXIT_START = 2


class StartError(Exception):
    """The gateway could not start; the message is the one line the user sees."""


async def serve_once(
    config_path: Path, host: str | None, port: int | None, *, link: WorkerLink | None = None
) -> None:
    """Serve until SIGINT/SIGTERM; reload the config on SIGHUP. StartError if the gateway
    cannot start. `link`: this process is one worker of several (see `workers`)."""
    configure_logging(json=os.environ.get("BASTION_LOG_FORMAT") == "json")
    try:
        config = load_config(config_path)
        worker = None if link is None else link.place.index
        gateway = Gateway(config, source=config_path, port=port, worker=worker)
    except ValueError as exc:  # ConfigError, from the file or from its agents
        raise StartError(str(exc)) from None
    app = create_app(gateway)
    if link is not None:
        link.attach(app, gateway)
    settings = config.server
    runner = make_runner(app, settings)
    host = host or settings.host
    port = port if port is not None else settings.port
    try:
        await _start(runner, link, host, port)
    except BaseException:
        await _quietly(runner.cleanup())
        if link is not None:
            await _quietly(link.close())
        raise
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
    if link is None:
        for address in runner.addresses:
            print(f"bastion listening on http://{address[0]}:{address[1]}", flush=True)
    else:
        await link.ready(stop.set)
    await stop.wait()
    # Readiness fails first, then the listener closes and streams in flight get
    # drain_timeout to finish before they are cancelled.
    gateway.ready = False
    gateway.stopping = True
    await runner.cleanup()
    if link is not None:  # after the drain: a write in flight still reaches the siblings
        await link.close()


async def _start(runner: web.AppRunner, link: WorkerLink | None, host: str, port: int) -> None:
    """Start the app (the gateway, its memory store), then listen; StartError naming
    what failed, never a traceback."""
    try:
        await runner.setup()
    except Exception as exc:
        raise StartError(f"the gateway did not start: {_reason(exc)}") from None
    if link is not None:
        try:
            await link.join()
        except Exception as exc:
            raise StartError(f"could not join the other workers: {_reason(exc)}") from None
    site = web.TCPSite(runner, host, port, reuse_port=link is not None or None)
    try:
        await site.start()
    except OSError as exc:
        raise StartError(f"cannot listen on {host}:{port}: {_reason(exc)}") from None


def _reason(exc: BaseException) -> str:
    if isinstance(exc, OSError) and exc.errno:
        return os.strerror(exc.errno).lower()  # not asyncio's "error while attempting..."
    return redact_url(str(exc)) or type(exc).__name__


async def _quietly(step: Coroutine[None, None, None]) -> None:
    try:
        await step
    except Exception:
        _log.debug("cleanup after a failed start failed", exc_info=True)


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


def run_loop(main: Coroutine[None, None, None], loop: str) -> None:
    """Run `main` on the event loop `--loop` names."""
    with asyncio.Runner(loop_factory=loop_factory(loop)) as runner:
        runner.run(main)


def preflight(config_path: Path, port: int | None, workers: int, loop: str) -> BastionConfig:
    """Everything that can be checked before a process starts; ValueError (ConfigError
    included) naming the flag or field otherwise."""
    if workers < 1:
        raise ValueError(f"--workers: expected 1 or more, got {workers}")
    if port is not None and not 0 <= port <= 65535:
        raise ValueError(f"--port: expected a port from 0 to 65535, got {port}")
    config = load_config(config_path)
    plans = plan_agents(config)  # the agents' tools import, too
    loop_factory(loop)
    if plans:  # the store is opened only for agents
        try:
            asyncio.run(check_store(config.memory.store))
        except ValueError as exc:
            raise ValueError(f"{config_path}: memory.store: {exc}") from None
    if workers > 1 and (port if port is not None else config.server.port) == 0:
        raise ValueError("--workers needs a fixed --port (or server.port)")
    return config


def _free(host: str, port: int) -> None:
    """StartError if nothing can listen on host:port (taken, not allowed, no such
    address). Asked before the gateway starts, and once for N workers rather than by
    each; `serve_once` still says it if the port is taken in between."""

    async def probe() -> None:
        server = await asyncio.get_running_loop().create_server(asyncio.Protocol, host, port)
        server.close()
        await server.wait_closed()

    try:
        asyncio.run(probe())
    except OSError as exc:
        raise StartError(f"cannot listen on {host}:{port}: {_reason(exc)}") from None


def serve(
    config_path: str, host: str | None, port: int | None, workers: int, *, loop: str = "auto"
) -> int:
    """Run the gateway until it is stopped; 2 (EXIT_START) with one line on stderr if it
    cannot start."""
    from bastion.server.workers.supervisor import supervise, worker_command

    path = Path(config_path)
    try:
        config = preflight(path, port, workers, loop)
        host = host or config.server.host
        port = port if port is not None else config.server.port
        _free(host, port)  # before anything starts: no store opened for nothing
    except (ValueError, StartError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_START
    if workers == 1:
        try:
            run_loop(serve_once(path, host, port), loop)
        except StartError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return EXIT_START
        return 0
    return supervise(
        worker_command(config_path, host, port, loop),
        workers,
        drain_timeout=config.server.drain_timeout,
        announce=f"bastion listening on http://{host}:{port} ({workers} workers)",
    )
