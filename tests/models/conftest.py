"""A loopback upstream for the provider tests: real sockets, exact bytes.

Each test installs handlers on an `Upstream` (an aiohttp.web server on port 0) and
points a model at it. The server records every request it receives, so tests can
check the wire format the model sends.
"""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import aiohttp
import orjson
import pytest
from aiohttp import web

from bastion.models.base import Endpoint, Timeouts
from bastion.models.h1 import H1Pool
from bastion.models.http import Transport

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

API_KEY = "sk-test-secret-0123456789"


@dataclass
class Recorded:
    method: str
    path: str
    headers: dict[str, str]
    body: Any


class Upstream:
    """A fake provider. `on(path, handler)` answers a path; requests are recorded."""

    def __init__(self) -> None:
        self.handlers: dict[str, Handler] = {}
        self.requests: list[Recorded] = []
        self.closing = asyncio.Event()  # set at teardown: hanging handlers return
        self.disconnected = asyncio.Event()  # set by handlers that see the client leave
        self.url = ""
        self._runner: web.AppRunner | None = None

    def on(self, path: str, handler: Handler) -> None:
        self.handlers[path] = handler

    @property
    def last(self) -> Recorded:
        return self.requests[-1]

    api_key = API_KEY

    def endpoint(self, provider: str = "openai", path: str = "/v1", **overrides: Any) -> Endpoint:
        """An endpoint pointing here (`path` appended to the base URL)."""
        return make_endpoint(self.url + path, provider, **overrides)

    @staticmethod
    def event(obj: Any, event: str | None = None) -> bytes:
        """One SSE event carrying `obj` as JSON, blank line included."""
        head = f"event: {event}\n".encode() if event else b""
        return head + b"data: " + orjson.dumps(obj) + b"\n\n"

    async def start(self) -> None:
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self._dispatch)
        self._runner = web.AppRunner(app, shutdown_timeout=0.5, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        port = self._runner.addresses[0][1]
        self.url = f"http://127.0.0.1:{port}"

    async def stop(self) -> None:
        self.closing.set()
        if self._runner is not None:
            await self._runner.cleanup()

    async def _dispatch(self, request: web.Request) -> web.StreamResponse:
        raw = await request.read()
        body = orjson.loads(raw) if raw else None
        self.requests.append(
            Recorded(
                request.method,
                request.path,
                {k.lower(): v for k, v in request.headers.items()},
                body,
            )
        )
        handler = self.handlers.get(request.path)
        if handler is None:
            return web.Response(status=404, text="no handler in test")
        return await handler(request)

    # --- ready-made handlers -----------------------------------------------------------

    def json(self, status: int, body: Any, headers: dict[str, str] | None = None) -> Handler:
        """Answer with a JSON body (bytes are sent exactly as given)."""
        payload = body if isinstance(body, bytes) else orjson.dumps(body)

        async def handler(request: web.Request) -> web.StreamResponse:
            return web.Response(
                status=status, body=payload, headers=headers, content_type="application/json"
            )

        return handler

    def sse(self, *parts: bytes, end: str = "eof") -> Handler:
        """Stream `parts` as text/event-stream, one write each, then end the body
        ("eof"), drop the connection mid-body ("drop") or keep it open ("hang")."""

        async def handler(request: web.Request) -> web.StreamResponse:
            resp = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
            await resp.prepare(request)
            for part in parts:
                await resp.write(part)
            if end == "eof":
                await resp.write_eof()
                return resp
            if end == "drop":
                assert request.transport is not None
                request.transport.abort()
            await self.closing.wait()
            return resp

        return handler

    def sse_until_client_leaves(self, first: bytes) -> Handler:
        """Send `first`, then keep-alive comments until writing fails: the client has
        closed its end. Sets `disconnected` when it does."""

        async def handler(request: web.Request) -> web.StreamResponse:
            resp = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
            await resp.prepare(request)
            await resp.write(first)
            try:
                while not self.closing.is_set():
                    await asyncio.sleep(0.01)
                    await resp.write(b": keep-alive\n\n")
            except (ConnectionError, aiohttp.ClientConnectionResetError):
                self.disconnected.set()
            return resp

        return handler

    def hang(self) -> Handler:
        """Accept the request and never send headers (until teardown)."""

        async def handler(request: web.Request) -> web.StreamResponse:
            await self.closing.wait()
            return web.Response(status=504)

        return handler


def pytest_asyncio_loop_factories(
    config: object, item: object
) -> dict[str, Callable[[], asyncio.AbstractEventLoop]]:
    """Every test here runs on asyncio's own loop and on uvloop (`bastion serve --loop`)
    when it is installed: their transports differ (uvloop's are not asyncio.Transport
    subclasses, its sock_connect resolves names itself)."""
    factories: dict[str, Callable[[], asyncio.AbstractEventLoop]] = {
        "asyncio": asyncio.new_event_loop
    }
    try:
        import uvloop
    except ImportError:
        return factories
    factories["uvloop"] = uvloop.new_event_loop
    return factories


@pytest.fixture
async def upstream() -> AsyncIterator[Upstream]:
    server = Upstream()
    await server.start()
    yield server
    await server.stop()


@pytest.fixture(params=["h1", "aiohttp"])
async def session(request: pytest.FixtureRequest) -> AsyncIterator[Transport]:
    """Each provider test runs over both transports: the pool Bastion owns by default
    (`h1`) and an injected aiohttp session."""
    if request.param == "h1":
        pool = H1Pool()
        yield pool
        await pool.aclose()
        return
    async with aiohttp.ClientSession() as client:
        yield client


@pytest.fixture
async def pool() -> AsyncIterator[H1Pool]:
    """A pool of one connection per host, for the h1 tests (some modules define their own)."""
    client = H1Pool(limit=1, connect_timeout=1.0)
    yield client
    await client.aclose()


@pytest.fixture
def refused_url() -> str:
    """A loopback URL that nothing listens on: connecting is refused."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = int(sock.getsockname()[1])
    return f"http://127.0.0.1:{port}"


def make_endpoint(url: str, provider: str = "openai", **overrides: Any) -> Endpoint:
    """An endpoint with short timeouts, so that a failing test fails fast."""
    options: dict[str, Any] = {
        "id": "primary",
        "provider": provider,
        "model": "test-model",
        "base_url": url,
        "api_key": API_KEY,
        "timeouts": Timeouts(connect=1.0, headers=2.0),
    }
    options.update(overrides)
    return Endpoint(**options)
