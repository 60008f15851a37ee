"""`Siblings`: the control plane's hook (`peers.Peers`) in a worker of several. Writes
go to the supervisor's hub, which applies them on every worker; the metrics page comes
back merged from the hub; events are read from each sibling's private socket."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from typing import Any

import aiohttp
import orjson
import structlog

from bastion.config import BastionConfig
from bastion.server.errors import ApiError
from bastion.server.workers.peers import Applied, Peers
from bastion.server.workers.private import StateSync
from bastion.server.workers.protocol import (
    LOCAL,
    SharedState,
    WorkerPlace,
    hub_socket,
    unix_session,
    worker_socket,
)

_log = structlog.get_logger("bastion.server")

# Seconds a write may take to reach every worker (the hub gives each 30 s, in parallel).
WRITE_TIMEOUT = 40.0
# Seconds the merged metrics page may take (the hub gives each worker 5 s, in parallel).
METRICS_TIMEOUT = 10.0
# Seconds between attempts to reach a sibling's event stream (one restarting).
RELAY_RETRY = 0.5


class Siblings(Peers):
    """This worker's link to the hub and to its siblings."""

    def __init__(self, place: WorkerPlace, sync: StateSync) -> None:
        super().__init__(place.index, place.count)
        self._place = place
        self._sync = sync
        self._session: aiohttp.ClientSession | None = None

    async def _post(self, route: str, body: bytes, seconds: float) -> bytes:
        if self._session is None:
            self._session = unix_session(hub_socket(self._place.runtime), seconds)
        async with self._session.post(
            f"{LOCAL}{route}",
            data=body,
            headers={"X-Bastion-Worker": str(self.index)},
            timeout=aiohttp.ClientTimeout(total=seconds),
        ) as response:
            response.raise_for_status()
            return await response.read()

    async def register(self, pid: int) -> SharedState:
        """Tell the hub this worker is starting; the state to start with."""
        answer = await self._post(
            "/register", orjson.dumps({"worker": self.index, "pid": pid}), WRITE_TIMEOUT
        )
        return SharedState.from_json(orjson.loads(answer))

    async def announce_ready(self) -> None:
        await self._post("/ready", orjson.dumps({"worker": self.index}), WRITE_TIMEOUT)

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()

    async def share_config(
        self, text: str, config: BastionConfig, endpoints: Sequence[str]
    ) -> Applied:
        self._sync.record(text, config)
        return await self._share("/config", {"config": text, "endpoints": list(endpoints)})

    async def share_isolation(self, endpoint: str, isolated: bool) -> Applied:
        return await self._share("/isolation", {"endpoint": endpoint, "isolated": isolated})

    async def _share(self, route: str, body: dict[str, Any]) -> Applied:
        try:
            answer = orjson.loads(await self._post(route, orjson.dumps(body), WRITE_TIMEOUT))
        except (aiohttp.ClientError, OSError, TimeoutError) as exc:
            # Applied here, and only here: the answer says so.
            _log.error("the supervisor did not take a control-plane write", error=repr(exc))
            return Applied(self.count, 1)
        return Applied(int(answer["workers"]), int(answer["applied"]))

    async def metrics_page(self, local: bytes) -> bytes:
        try:
            return await self._post("/metrics", local, METRICS_TIMEOUT)
        except (aiohttp.ClientError, OSError, TimeoutError):
            # One worker's page would show the sums going backwards: none is better.
            raise ApiError(
                503,
                "the metrics of the other workers are not available",
                type="server_error",
                code="metrics_unavailable",
            ) from None

    def relay_events(self, push: Callable[[bytes], None]) -> Callable[[], None]:
        tasks = [
            asyncio.create_task(_relay(worker_socket(self._place.runtime, sibling), push))
            for sibling in range(self.count)
            if sibling != self.index
        ]

        def stop() -> None:
            for task in tasks:
                task.cancel()

        return stop


async def _relay(socket: Any, push: Callable[[bytes], None]) -> None:
    """A sibling's event frames, handed to `push`, until cancelled; reconnects when the
    sibling goes away (a restart), RELAY_RETRY seconds apart."""
    while True:
        try:
            async with (
                aiohttp.ClientSession(
                    connector=aiohttp.UnixConnector(path=str(socket)),
                    timeout=aiohttp.ClientTimeout(total=None, sock_connect=2.0),
                ) as session,
                session.get(f"{LOCAL}/api/v1/events") as response,
            ):
                while frame := await response.content.readuntil(b"\n\n"):
                    if not frame.startswith(b":"):  # comments: subscribed, keep-alive
                        push(frame)
        except (aiohttp.ClientError, OSError, ValueError):
            pass
        await asyncio.sleep(RELAY_RETRY)
