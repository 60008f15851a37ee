"""The parent of `bastion serve --workers N`: starts N workers, keeps them running, and
runs the hub (hub.py) through which they share control-plane state.

- A worker that exits while the gateway runs is logged (its pid and exit code or
  signal) and started again, at once or with backoff (policy.py); one that keeps dying
  is given up on with an error line, and the others serve on. When none is left the
  supervisor exits 3.
- A worker that fails while the gateway first starts (a port taken, a store that will
  not open) stops the start: the others are stopped and the supervisor exits with the
  worker's code (2), the worker having said why on stderr.
- SIGINT and SIGTERM are forwarded to every worker, which drain and exit; SIGHUP is
  forwarded, and every worker re-reads the config file.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path

import structlog
from aiohttp import web

from bastion.observability.logging import configure_logging
from bastion.server.workers.hub import Hub
from bastion.server.workers.policy import RestartPolicy, RestartTracker
from bastion.server.workers.protocol import WorkerPlace, hub_socket

_log = structlog.get_logger("bastion.supervisor")

# The exit code when every worker crash-looped and was given up on.
EXIT_ALL_GAVE_UP = 3
# Seconds past the drain timeout a stopping worker gets before it is killed.
STOP_GRACE = 10.0


def runtime_directory() -> Path:
    """A new directory only this user can enter (mkdtemp makes it 0700), for the private
    sockets; under $XDG_RUNTIME_DIR when there is one."""
    base = os.environ.get("XDG_RUNTIME_DIR")
    if not base or not os.path.isdir(base):
        base = tempfile.gettempdir()
    return Path(tempfile.mkdtemp(prefix="bastion-", dir=base))


class Supervisor:
    """See the module docstring. `command` starts one worker (its place comes in the
    environment)."""

    def __init__(
        self,
        command: Sequence[str],
        count: int,
        runtime: Path,
        *,
        drain_timeout: float,
        policy: RestartPolicy | None = None,
    ) -> None:
        self.command = tuple(command)
        self.count = count
        self.runtime = runtime
        self.drain_timeout = drain_timeout
        self.policy = policy or RestartPolicy()
        self.hub = Hub(runtime, count)
        self.started = False
        self.stopping = asyncio.Event()
        self.failed: int | None = None
        self.given_up: set[int] = set()
        self._processes: dict[int, asyncio.subprocess.Process] = {}

    async def run(self, announce: str) -> int:
        """Until every worker has exited; the exit code. `announce` is printed once
        every worker listens."""
        configure_logging(json=os.environ.get("BASTION_LOG_FORMAT") == "json")
        runner = web.AppRunner(self.hub.app(), shutdown_timeout=1.0, access_log=None)
        await runner.setup()
        await web.UnixSite(runner, str(hub_socket(self.runtime))).start()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, self.stop, sig)
        loop.add_signal_handler(signal.SIGHUP, self._hangup)
        try:
            keepers = [asyncio.create_task(self._keep(slot)) for slot in range(self.count)]
            all_ready = asyncio.create_task(self.hub.all_ready.wait())
            await asyncio.wait([all_ready, *keepers], return_when=asyncio.FIRST_COMPLETED)
            if all_ready.done() and not self.stopping.is_set():
                self.started = True
                print(announce, flush=True)
            else:
                all_ready.cancel()
            codes = await asyncio.gather(*keepers)
        finally:
            for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
                loop.remove_signal_handler(sig)
            await runner.cleanup()
        if self.failed is not None:
            return self.failed
        if len(self.given_up) == self.count:
            return EXIT_ALL_GAVE_UP
        return max((_exit_code(code) for code in codes), default=0)

    def stop(self, sig: int = signal.SIGTERM) -> None:
        """Stop restarting; pass `sig` on to every worker."""
        self.stopping.set()
        self._send(sig)

    def _hangup(self) -> None:
        self.hub.file_config()
        self._send(signal.SIGHUP)

    def _send(self, sig: int) -> None:
        for process in self._processes.values():
            if process.returncode is None:
                process.send_signal(sig)

    async def _keep(self, slot: int) -> int:
        """Run worker `slot` until the gateway stops or the slot is given up on."""
        tracker = RestartTracker(self.policy)
        place = WorkerPlace(self.runtime, slot, self.count)
        loop = asyncio.get_running_loop()
        while True:
            process = await asyncio.create_subprocess_exec(
                *self.command, env={**os.environ, **place.environment()}
            )
            self._processes[slot] = process
            if self.stopping.is_set():  # stopped while it was being started
                process.send_signal(signal.SIGTERM)
            began = loop.time()
            code = await self._wait(process)
            del self._processes[slot]
            self.hub.gone(slot)
            if self.stopping.is_set():
                # One still starting has no handler yet and dies of the signal passed
                # on: it stopped as asked.
                return 0 if -code in (signal.SIGTERM, signal.SIGINT) else code
            if not self.started:
                # The gateway never came up: stop the others and say so with this code.
                self.failed = _exit_code(code) or 1
                self.stop()
                return code
            delay = tracker.after_exit(loop.time() - began)
            how = _how(code)
            if delay is None:
                self.given_up.add(slot)
                alive = self.count - len(self.given_up)
                _log.error(
                    f"worker {slot} (pid {process.pid}) {how} again: it crash-loops "
                    f"({tracker.quick_exits} quick exits in a row); not restarting it, "
                    f"{alive} of {self.count} workers left",
                    worker=slot,
                    pid=process.pid,
                )
                if not alive:
                    self.stop()
                return code
            _log.error(
                f"worker {slot} (pid {process.pid}) {how}; restarting it in {delay:g}s",
                worker=slot,
                pid=process.pid,
                exit=code,
            )
            try:
                async with asyncio.timeout(delay):
                    await self.stopping.wait()
                return code
            except TimeoutError:
                pass

    async def _wait(self, process: asyncio.subprocess.Process) -> int:
        """The process's return code; killed if it outlives a stop by far."""
        waiting = asyncio.create_task(process.wait())
        stopping = asyncio.create_task(self.stopping.wait())
        await asyncio.wait([waiting, stopping], return_when=asyncio.FIRST_COMPLETED)
        if not waiting.done():
            try:
                async with asyncio.timeout(self.drain_timeout + STOP_GRACE):
                    await asyncio.shield(waiting)
            except TimeoutError:
                _log.error("a worker did not stop in time: killing it", pid=process.pid)
                process.kill()
        stopping.cancel()
        return await waiting


def _how(code: int) -> str:
    if code < 0:
        try:
            name = signal.Signals(-code).name
        except ValueError:
            name = f"signal {-code}"
        return f"was killed by {name}"
    return f"exited with code {code}"


def _exit_code(code: int) -> int:
    """A shell's view of a return code: 128 + the signal for one killed by a signal."""
    return 128 - code if code < 0 else code


def supervise(command: Sequence[str], count: int, *, drain_timeout: float, announce: str) -> int:
    """Run `count` workers of `command` under a supervisor until they stop."""
    runtime = runtime_directory()
    try:
        supervisor = Supervisor(command, count, runtime, drain_timeout=drain_timeout)
        return asyncio.run(supervisor.run(announce))
    finally:
        shutil.rmtree(runtime, ignore_errors=True)


def worker_command(config: str, host: str, port: int, loop: str) -> list[str]:
    """The command line of one worker process."""
    return [
        sys.executable,
        "-m",
        "bastion.server.workers.worker",
        config,
        "--host",
        host,
        "--port",
        str(port),
        "--loop",
        loop,
    ]
