"""Other HTTP clients behind Bastion's transport seam, for `bench.upstream_clients`.

    python -m bench.client_adapters --client NAME [--loop asyncio|uvloop] serve -c FILE ...

runs `bastion serve` with every model's own transport made by the named client instead of
the default (`bastion.models.http.default_transport`):

- `h1`: the default, Bastion's own HTTP/1.1 pool (`bastion/models/h1.py`);
- `aiohttp`: aiohttp's client, tuned: one connector per endpoint (limit 100, keep-alive
  30 s, DNS cache on), no cookie jar, no tracing, a session-wide timeout, no redirects;
- `pyreqwest`: pyreqwest's async client (Rust reqwest/hyper on a tokio runtime),
  HTTP/1.1 only, the same limits; a complete() call reads the body in Rust at once;
- `curl-cffi`: curl_cffi's `AsyncSession` (libcurl multi on the event loop), 100 handles.

These adapters exist to be measured: they do what the benchmark's requests need
(POST a body, stream or read the answer) and no more.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from datetime import timedelta
from typing import Any

import aiohttp

from bastion.models import http
from bastion.models.base import Endpoint
from bastion.models.transport import (
    AiohttpTransport,
    UpstreamRequest,
    UpstreamResponse,
    UpstreamTransport,
)

POOL = http.DEFAULT_POOL_LIMIT
KEEPALIVE = http.KEEPALIVE_SECONDS


class _Body:
    """A body behind the seam, from an async chunk source."""

    def __init__(self, chunks: AsyncIterator[bytes] | None, whole: bytes | None = None) -> None:
        self._chunks = chunks
        self._buffer = whole or b""
        self._eof = chunks is None

    async def _more(self) -> bool:
        if self._chunks is None:
            return False
        try:
            self._buffer += await anext(self._chunks)
        except StopAsyncIteration:
            self._chunks, self._eof = None, True
            return False
        return True

    async def read(self, n: int = -1) -> bytes:
        while (n < 0 or not self._buffer) and await self._more():
            pass
        cut = len(self._buffer) if n < 0 else n
        out, self._buffer = self._buffer[:cut], self._buffer[cut:]
        return out

    async def _iter(self) -> AsyncIterator[bytes]:
        while True:
            chunk = await self.read(1 << 20)
            if not chunk:
                return
            yield chunk

    def iter_any(self) -> AsyncIterator[bytes]:
        return self._iter()

    def is_eof(self) -> bool:
        return self._eof and not self._buffer


class _Response:
    def __init__(
        self,
        status: int,
        headers: Mapping[str, str],
        content: _Body,
        close: Callable[[], Any],
    ) -> None:
        self.status = status
        self.reason: str | None = None
        self.headers = headers
        self.content = content
        self._close = close

    @property
    def content_type(self) -> str:
        value = self.headers.get("content-type", "")
        return value.partition(";")[0].strip().lower()

    def release(self) -> None:
        self.close()

    def close(self) -> None:
        close, self._close = self._close, _nothing
        close()


def _nothing() -> None:
    return None


def _spawn(awaitable: Any) -> None:
    import asyncio

    task = asyncio.get_running_loop().create_task(awaitable)
    _tasks.add(task)
    task.add_done_callback(_tasks.discard)


_tasks: set[Any] = set()


# --- aiohttp, tuned ---------------------------------------------------------------------


class TunedAiohttp(AiohttpTransport):
    def __init__(self, endpoint: Endpoint) -> None:
        connector = aiohttp.TCPConnector(
            limit=endpoint.max_concurrency or POOL,
            keepalive_timeout=KEEPALIVE,
            use_dns_cache=True,
            ttl_dns_cache=300,
        )
        session = aiohttp.ClientSession(
            connector=connector,
            cookie_jar=aiohttp.DummyCookieJar(),
            timeout=aiohttp.ClientTimeout(total=None, sock_connect=endpoint.timeouts.connect),
        )
        super().__init__(session, connect_timeout=endpoint.timeouts.connect)
        self._own = session

    async def aclose(self) -> None:
        await self._own.close()


# --- pyreqwest ----------------------------------------------------------------------------


class Pyreqwest:
    def __init__(self, endpoint: Endpoint) -> None:
        from pyreqwest.client import ClientBuilder

        self._client = (
            ClientBuilder()
            .max_connections(endpoint.max_concurrency or POOL)
            .pool_idle_timeout(timedelta(seconds=KEEPALIVE))
            .connect_timeout(timedelta(seconds=endpoint.timeouts.connect))
            .http1_only()
            .follow_redirects(False)
            .build()
        )

    async def handle_async_request(self, request: UpstreamRequest) -> UpstreamResponse:
        builder = self._client.request(request.method, request.url).headers(dict(request.headers))
        if request.body is not None:
            builder = builder.body_bytes(request.body)
        if request.headers.get("Accept") != "text/event-stream":
            resp = await builder.build().send()
            whole = bytes(await resp.bytes())
            headers = {k.lower(): v for k, v in resp.headers.items()}
            return _Response(resp.status, headers, _Body(None, whole), lambda: None)
        streamed = builder.build_streamed()
        resp = await streamed.__aenter__()
        reader = resp.body_reader

        async def chunks() -> AsyncIterator[bytes]:
            while (chunk := await reader.read_chunk()) is not None:
                yield bytes(chunk)

        headers = {k.lower(): v for k, v in resp.headers.items()}
        done = streamed.__aexit__(None, None, None)
        return _Response(resp.status, headers, _Body(chunks()), lambda: _spawn(done))

    async def aclose(self) -> None:
        await self._client.close()


# --- curl_cffi ----------------------------------------------------------------------------


class CurlCffi:
    def __init__(self, endpoint: Endpoint) -> None:
        from curl_cffi.requests import AsyncSession

        self._session = AsyncSession(
            max_clients=endpoint.max_concurrency or POOL,
            timeout=None,
            allow_redirects=False,
        )

    async def handle_async_request(self, request: UpstreamRequest) -> UpstreamResponse:
        stream = request.headers.get("Accept") == "text/event-stream"
        resp = await self._session.request(
            request.method,  # type: ignore[arg-type]
            request.url,
            headers=dict(request.headers),
            data=request.body,
            stream=stream,
        )
        headers = {k.lower(): v for k, v in resp.headers.items() if v is not None}
        if not stream:
            return _Response(resp.status_code, headers, _Body(None, resp.content), lambda: None)
        return _Response(
            resp.status_code,
            headers,
            _Body(resp.aiter_content()),
            lambda: _spawn(resp.aclose()),
        )

    async def aclose(self) -> None:
        await self._session.close()


CLIENTS: dict[str, Callable[[Endpoint], UpstreamTransport] | None] = {
    "h1": None,  # the default, left as it is
    "aiohttp": TunedAiohttp,
    "pyreqwest": Pyreqwest,
    "curl-cffi": CurlCffi,
}


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.client_adapters")
    parser.add_argument("--client", choices=sorted(CLIENTS), required=True)
    parser.add_argument("--loop", choices=("asyncio", "uvloop"), default=None)
    args, rest = parser.parse_known_args(argv)
    factory = CLIENTS[args.client]
    if factory is not None:
        http.default_transport = factory
    if args.loop is not None:
        rest = [*rest, "--loop", args.loop]
    from bastion.cli import main as bastion_main

    return bastion_main(rest)


if __name__ == "__main__":
    sys.exit(main())
