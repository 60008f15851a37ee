"""The seam between the provider models and whatever carries their HTTP requests.

One async method, in the shape of httpx's `handle_async_request`: it takes an
`UpstreamRequest` and returns an `UpstreamResponse` once the status line and headers
are in, its body still streaming in `content`. Two implementations ship:

- `H1Pool` (`h1.py`), Bastion's own HTTP/1.1 pool: the default, because it is the
  cheapest per call (docs/benchmarks.md, "Upstream clients");
- `AiohttpTransport` below, over an `aiohttp.ClientSession` an application injects.

The provider tests run over both. Exceptions are each transport's own; `http_errors`
translates them with one table.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import NamedTuple, Protocol, runtime_checkable

import aiohttp

from bastion.models.sse import ByteChunks


class UpstreamRequest(NamedTuple):
    """One request to send: an absolute http(s) URL, headers and an optional body.
    (A tuple: one is built per upstream call, and a tuple is the cheapest to build.)"""

    method: str
    url: str
    headers: Mapping[str, str]
    body: bytes | None = None


class UpstreamBody(ByteChunks, Protocol):
    """A response body as it arrives (the parts of aiohttp's StreamReader the models use):
    `iter_any` for the SSE decoder, and these."""

    async def read(self, n: int = -1) -> bytes: ...
    def is_eof(self) -> bool: ...


class UpstreamResponse(Protocol):
    """A response whose head is in (the parts of aiohttp's ClientResponse the models use).

    `release()` gives the connection back once the body was read to its end; `close()`
    drops it, aborting the exchange if it is still running.
    """

    @property
    def status(self) -> int: ...
    @property
    def reason(self) -> str | None: ...
    @property
    def headers(self) -> Mapping[str, str]: ...
    @property
    def content_type(self) -> str: ...
    @property
    def content(self) -> UpstreamBody: ...
    def release(self) -> object: ...
    def close(self) -> None: ...


@runtime_checkable
class UpstreamTransport(Protocol):
    """What carries upstream requests. `aclose()` closes what the transport owns."""

    async def handle_async_request(self, request: UpstreamRequest) -> UpstreamResponse: ...

    async def aclose(self) -> None: ...


class AiohttpTransport:
    """An `aiohttp.ClientSession` behind the seam. The session is the caller's: it is
    used as configured (connector, proxy, TLS) and `aclose()` leaves it open."""

    __slots__ = ("_session", "_timeout")

    def __init__(self, session: aiohttp.ClientSession, *, connect_timeout: float) -> None:
        self._session = session
        # total=None: the router bounds whole attempts; a per-request timeout also
        # overrides the session's default (aiohttp's is a 5-minute total).
        self._timeout = aiohttp.ClientTimeout(total=None, sock_connect=connect_timeout)

    async def handle_async_request(self, request: UpstreamRequest) -> UpstreamResponse:
        return await self._session.request(
            request.method,
            request.url,
            data=request.body,
            headers=request.headers,
            timeout=self._timeout,
            # A redirected POST silently becomes a GET without its body.
            allow_redirects=False,
        )

    async def aclose(self) -> None:
        return None


__all__ = [
    "AiohttpTransport",
    "UpstreamBody",
    "UpstreamRequest",
    "UpstreamResponse",
    "UpstreamTransport",
]
