"""Raw asyncio servers that answer exactly the bytes a test needs (or none), on
loopback, and the helpers the h1 failure tests share."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable
from typing import TypeVar

from bastion.models.h1 import H1Pool, H1Target

OK = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"

T = TypeVar("T")
Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter, int], Awaitable[None]]


class RawServer:
    """Calls `handler(reader, writer, n)` for the n-th connection (from 1)."""

    def __init__(self, handler: Handler) -> None:
        self.handler = handler
        self.connections = 0
        self.requests = 0
        self.received = asyncio.Event()  # a request came in
        self.gone = asyncio.Event()  # a handler saw the client close its end
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self.url = ""

    def target(self, scheme: str = "http") -> H1Target:
        return H1Target.parse(self.url.replace("http", scheme, 1) + "/v1/x")

    async def read_request(self, reader: asyncio.StreamReader) -> bytes:
        head = await reader.readuntil(b"\r\n\r\n")
        for line in head.split(b"\r\n"):
            if line.lower().startswith(b"content-length:"):
                await reader.readexactly(int(line.split(b":")[1]))
        self.requests += 1
        self.received.set()
        return head

    async def wait_until_client_leaves(self, reader: asyncio.StreamReader) -> None:
        with contextlib.suppress(ConnectionError):
            while await reader.read(1024):
                pass
        self.gone.set()

    async def _on_connection(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter):
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        self.connections += 1
        try:
            await self.handler(reader, writer, self.connections)
        except (ConnectionError, asyncio.IncompleteReadError, asyncio.CancelledError):
            pass  # the client left, or the test is over (the task must not end cancelled)
        finally:
            writer.close()
            self._tasks.discard(task)

    async def __aenter__(self) -> RawServer:
        self._server = await asyncio.start_server(self._on_connection, "127.0.0.1", 0)
        port = self._server.sockets[0].getsockname()[1]
        self.url = f"http://127.0.0.1:{port}"
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        assert self._server is not None
        self._server.close()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)


def slots_in_use(pool: H1Pool, target: H1Target) -> int:
    """The pool's count of connections for `target` (open, connecting or idle)."""
    host = pool._hosts.get((target.scheme, target.host, target.port))
    return 0 if host is None else host.count


async def get(pool: H1Pool, target: H1Target) -> bytes:
    resp = await pool.request("GET", target, {}, None)
    try:
        return await resp.content.read()
    finally:
        resp.release()


async def within(awaitable: Awaitable[T], seconds: float = 2.0) -> T:
    async with asyncio.timeout(seconds):
        return await awaitable
