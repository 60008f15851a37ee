"""One worker of `bastion serve --workers N`, started by the supervisor as
`python -m bastion.server.workers.worker CONFIG --host H --port P --loop L`, its place
(index, count, runtime directory) in its environment.

A worker is the one-process gateway (`runner.serve_once`) plus `WorkerLink`, which
starts its private control app, takes the shared state from the hub before the public
port opens (a restarted worker comes up with the config PUT and the isolation), and
stops the worker if the supervisor goes away.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import sys
from collections.abc import Callable
from pathlib import Path

from aiohttp import web

from bastion.server.control.api import CONTROL
from bastion.server.gateway import Gateway
from bastion.server.workers.peers import PEERS
from bastion.server.workers.private import StateSync, private_app
from bastion.server.workers.protocol import WorkerPlace, hub_socket, worker_socket
from bastion.server.workers.siblings import Siblings

# Seconds between looks at whether the supervisor is still there.
PARENT_CHECK = 1.0


class WorkerLink:
    """What a worker adds to the one-process gateway; `serve_once` calls it in order:
    `attach` (before the app starts), `join` (before the public port opens), `ready`
    (after), `close` (on the way out)."""

    def __init__(self, place: WorkerPlace) -> None:
        self.place = place
        self._private: web.AppRunner | None = None
        self._siblings: Siblings | None = None
        self._sync: StateSync | None = None
        self._watch: asyncio.Task[None] | None = None
        self._parent = os.getppid()
        self._orphaned = False

    def attach(self, app: web.Application, gateway: Gateway) -> None:
        self._sync = StateSync(gateway, app[CONTROL])
        self._siblings = Siblings(self.place, self._sync)
        app[PEERS] = self._siblings
        private = private_app(gateway, self._sync, self.place.index, self.place.count)
        self._private = web.AppRunner(private, shutdown_timeout=1.0, access_log=None)

    async def join(self) -> None:
        assert self._private is not None and self._siblings is not None and self._sync
        await self._private.setup()
        path = worker_socket(self.place.runtime, self.place.index)
        path.unlink(missing_ok=True)  # left by this slot's previous worker
        await web.UnixSite(self._private, str(path)).start()
        state = await self._siblings.register(os.getpid())
        await self._sync.apply(state)

    async def ready(self, stop: Callable[[], None]) -> None:
        assert self._siblings is not None
        await self._siblings.announce_ready()
        self._watch = asyncio.create_task(self._watch_parent(stop))

    async def _watch_parent(self, stop: Callable[[], None]) -> None:
        # Orphaned (the supervisor was killed), a worker would serve on with no one to
        # share state with or restart it: stop, draining like on SIGTERM.
        while True:
            await asyncio.sleep(PARENT_CHECK)
            if os.getppid() != self._parent:
                self._orphaned = True
                stop()
                return

    async def close(self) -> None:
        if self._watch is not None:
            self._watch.cancel()
        if self._private is not None:
            await self._private.cleanup()
        if self._siblings is not None:
            await self._siblings.close()
        if self._orphaned:
            self._tidy()

    def _tidy(self) -> None:
        """The supervisor that would have removed the runtime directory is gone: remove
        this worker's part of it, and the directory with the last worker out."""
        runtime = self.place.runtime
        for path in (worker_socket(runtime, self.place.index), hub_socket(runtime)):
            path.unlink(missing_ok=True)
        with contextlib.suppress(OSError):  # not empty: a sibling is still on its way out
            runtime.rmdir()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="bastion-worker")
    parser.add_argument("config")
    parser.add_argument("--host", required=True)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--loop", default="auto")
    args = parser.parse_args(argv)
    from bastion.server.runner import StartError, run_loop, serve_once

    place = WorkerPlace.from_environment()
    link = WorkerLink(place)
    try:
        run_loop(serve_once(Path(args.config), args.host, args.port, link=link), args.loop)
    except StartError as exc:
        print(f"error: worker {place.index}: {exc}", file=sys.stderr, flush=True)
        return 2
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
