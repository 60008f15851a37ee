"""The supervisor's private control app: the state the workers share, and the merged
metrics page. Workers reach it over the Unix socket `protocol.hub_socket`.

    POST /register   {"worker", "pid"} → the current SharedState (a worker starting)
    POST /ready      {"worker"}          (the worker listens on the public port)
    POST /config     {"config", "endpoints"} → {"workers", "applied"}
    POST /isolation  {"endpoint", "isolated"} → {"workers", "applied"}
    POST /metrics    the asking worker's own page → the page of every worker

A write takes the hub's lock, makes a new version of the state and sends it to every
registered worker (the one that took the write too: a sibling's write may have landed
on it in between) before it answers. A worker registering waits for the lock, so it
either is sent the new version or registers after it and is handed it: a worker
restarted mid-write still comes up with the current state.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import aiohttp
import orjson
import structlog
from aiohttp import web

from bastion.server.workers.merge import MetricsMerge
from bastion.server.workers.protocol import LOCAL, SharedState, unix_session, worker_socket

_log = structlog.get_logger("bastion.supervisor")

# Seconds a worker may take to apply a new state (a reload builds and starts a router).
SYNC_TIMEOUT = 30.0
# Seconds a worker may take to render its metrics page.
SCRAPE_TIMEOUT = 5.0


class Hub:
    """The shared state and who is there to apply it; see the module docstring."""

    def __init__(self, runtime: Path, count: int) -> None:
        self.runtime = runtime
        self.count = count
        self.state = SharedState()
        self.registered: dict[int, int] = {}  # worker index → pid
        self.ready: set[int] = set()
        self.all_ready = asyncio.Event()
        self._lock = asyncio.Lock()
        self._merge = MetricsMerge()

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_post("/register", self._register)
        app.router.add_post("/ready", self._ready)
        app.router.add_post("/config", self._config)
        app.router.add_post("/isolation", self._isolation)
        app.router.add_post("/metrics", self._metrics)
        return app

    def gone(self, worker: int) -> None:
        """Worker `worker` exited: writes no longer wait for it, its counts are kept."""
        self.registered.pop(worker, None)
        self.ready.discard(worker)
        self._merge.retire(worker)

    def file_config(self) -> None:
        """SIGHUP: every worker re-reads the file, which replaces what was PUT; a worker
        restarted from now on starts from the file too."""
        self.state = replace(self.state, version=self.state.version + 1, config=None, put_at=None)

    # --- the routes ----------------------------------------------------------------------

    async def _register(self, request: web.Request) -> web.Response:
        body = await _json(request)
        async with self._lock:
            self.registered[int(body["worker"])] = int(body["pid"])
            return _answer(self.state.to_json())

    async def _ready(self, request: web.Request) -> web.Response:
        self.ready.add(int((await _json(request))["worker"]))
        if len(self.ready) == self.count:
            self.all_ready.set()
        return _answer({})

    async def _config(self, request: web.Request) -> web.Response:
        body = await _json(request)
        endpoints = set(body["endpoints"])
        async with self._lock:
            # Isolation survives a reload only for the endpoints the new config keeps.
            self.state = replace(
                self.state,
                version=self.state.version + 1,
                config=str(body["config"]),
                isolated=tuple(e for e in self.state.isolated if e in endpoints),
                put_at=time.time(),
            )
            return _answer(await self._apply_everywhere())

    async def _isolation(self, request: web.Request) -> web.Response:
        body = await _json(request)
        endpoint = str(body["endpoint"])
        async with self._lock:
            isolated = [e for e in self.state.isolated if e != endpoint]
            if body["isolated"]:
                isolated.append(endpoint)
            self.state = replace(
                self.state, version=self.state.version + 1, isolated=tuple(isolated)
            )
            return _answer(await self._apply_everywhere())

    async def _metrics(self, request: web.Request) -> web.Response:
        asking = int(request.headers["X-Bastion-Worker"])
        local = await request.read()
        others = [w for w in self.registered if w != asking]
        pages = await asyncio.gather(*(self._scrape(w) for w in others))
        merged = self._merge.page({asking: local, **dict(zip(others, pages, strict=True))})
        return web.Response(body=merged, content_type="text/plain")

    # --- talking to workers --------------------------------------------------------------

    async def _apply_everywhere(self) -> dict[str, int]:
        state = self.state.to_json()
        workers = list(self.registered)
        results = await asyncio.gather(*(self._sync(w, state) for w in workers))
        return {"workers": self.count, "applied": sum(results)}

    async def _sync(self, worker: int, state: dict[str, Any]) -> bool:
        try:
            async with (
                unix_session(worker_socket(self.runtime, worker), SYNC_TIMEOUT) as session,
                session.post(f"{LOCAL}/sync", json=state) as response,
            ):
                if response.status == 200:
                    return True
                _log.error(
                    "a worker refused the shared state",
                    worker=worker,
                    status=response.status,
                    error=(await response.text())[:500],
                )
        except (aiohttp.ClientError, OSError, TimeoutError) as exc:
            _log.warning("a worker did not take the shared state", worker=worker, error=repr(exc))
        return False

    async def _scrape(self, worker: int) -> bytes | None:
        try:
            async with (
                unix_session(worker_socket(self.runtime, worker), SCRAPE_TIMEOUT) as session,
                session.get(f"{LOCAL}/metrics") as response,
            ):
                response.raise_for_status()
                return await response.read()
        except (aiohttp.ClientError, OSError, TimeoutError):
            return None  # restarting: its last counts stand in


async def _json(request: web.Request) -> dict[str, Any]:
    body: dict[str, Any] = orjson.loads(await request.read())
    return body


def _answer(body: dict[str, Any]) -> web.Response:
    return web.Response(body=orjson.dumps(body), content_type="application/json")
