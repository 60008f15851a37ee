"""A small HTTP/1.1 client for the upstream hot path: a keep-alive pool over asyncio
Protocols, responses parsed by httptools (llhttp, as in uvicorn).

Why hand-written: profiled under load (wrk, 0 ms upstream, one core), aiohttp's client
— `ClientSession._request`, ClientRequest/ClientResponse, StreamReader, the cookie jar,
the tracing hooks — cost about 55 µs of CPU per upstream call, a quarter of the
gateway's CPU. A gateway call needs none of that machinery: no cookies, redirects,
auth helpers or multipart; one request head built as bytes, one write, one parser fed
as bytes arrive. This client does only that (target: ≤ 15 µs per call beyond the
socket syscalls). Measured: 13.6 µs a call with the socket replaced by an in-process
transport, of which 4.3 µs is the event loop's own round trip; on loopback, 25–38 µs
of client CPU a call (syscalls included) against aiohttp's 62–100. Measured again at
the gateway beside tuned aiohttp, pyreqwest and curl_cffi (docs/benchmarks.md,
"Upstream clients"): each of them costs the gateway 36–160 % more CPU per request.

What connecting involves — proxies (CONNECT tunnels, absolute form), the endpoint's
TLS trust and client certificate, a DNS cache, happy eyeballs — is in `h1_connect`.

What it does:
- `H1Target.parse(url)` once per endpoint; `H1Pool.request()` returns an `H1Response`
  once the status line and headers are in; the body is read from `response.content`
  (`read`, `iter_any`, `is_eof` — the parts of aiohttp's StreamReader the models use);
  then `release()` (connection back to the pool if the body was read to its end) or
  `close()` (abort).
- At most `limit` connections per (scheme, host, port); callers beyond wait in FIFO
  order. Idle connections are dropped after `keepalive` seconds, checked lazily when
  acquired and by an O(1) sweep of the oldest one on each release: no timers.
- An idle connection is checked before it is reused: closed, or (idle over a second)
  with anything to read (the server's FIN not yet seen by the loop, a TLS
  close_notify), it is dropped and the request goes on another — nothing was sent on
  it. A reused connection that fails
  after the request was written and before any byte of the response (the keep-alive
  race) is retried once on a new connection only for an idempotent method: a POST may
  have been read, so its caller gets the connection error and decides. Nothing else is
  ever retried.
- Only connecting is bounded (`connect_timeout`); callers bound the rest with
  `asyncio.timeout`. Cancellation anywhere closes that connection and frees its slot.
- Failures raise the errors of `h1_errors` (re-exported here, the tree is drawn there).

The pool is here; the target and the request head are in `h1_request`, one connection
(Protocol, parser callbacks, `H1Response`) in `h1_conn`, the body stream and
Content-Encoding decoding in `h1_body`, connecting in `h1_connect`.
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl
from collections import deque
from collections.abc import Coroutine, Mapping

from bastion.models.h1_body import H1Body
from bastion.models.h1_conn import Connection, ConnKey, H1Response
from bastion.models.h1_connect import DNS_TTL, HAPPY_EYEBALLS_DELAY, Connector
from bastion.models.h1_errors import (
    H1ConnectError,
    H1ConnectTimeout,
    H1Disconnected,
    H1Error,
    H1InvalidURL,
    H1ProtocolError,
    H1TLSError,
)
from bastion.models.h1_request import H1Target, request_head
from bastion.models.transport import UpstreamRequest
from bastion.models.transport_options import Proxies

# Methods sent again when a reused connection dies before answering (RFC 9110 §9.2.2).
_IDEMPOTENT = frozenset({"GET", "HEAD", "OPTIONS", "PUT", "DELETE"})
# Idle longer than this, a connection's socket is polled before reuse (a syscall): servers
# close idle keep-alive connections after seconds (uvicorn 5 s, nginx 75 s), and under
# load a connection is reused within milliseconds, so the poll is skipped on the hot path.
QUIET_CHECK_AFTER = 1.0
# Parsed targets kept per URL; models send to a handful of fixed URLs.
_TARGET_CACHE = 256


class _Host:
    """The connections to one (scheme, host, port)."""

    __slots__ = ("conns", "count", "idle", "waiters")

    def __init__(self) -> None:
        self.count = 0  # slots taken: open, connecting, or handed to a waiter
        self.conns: set[Connection] = set()
        self.idle: deque[Connection] = deque()  # oldest left, newest right
        # Each waiter gets an idle connection, or None: a slot to connect in.
        self.waiters: deque[asyncio.Future[Connection | None]] = deque()


class H1Pool:
    """Keep-alive HTTP/1.1 connections, at most `limit` per (scheme, host, port).

    `connect_timeout` bounds name lookup, TCP connect, proxy tunnel and TLS handshake
    together; nothing else is timed here. `ssl_context` defaults to
    `ssl.create_default_context()` (made on first use). `proxies` says which targets go
    through which proxy (default: none; `TransportOptions.proxies()` reads the
    environment). `dns_ttl` and `happy_eyeballs_delay`: see `h1_connect`. A connection
    idle longer than `quiet_check_after` seconds is asked of its socket before reuse.
    """

    def __init__(
        self,
        *,
        limit: int = 100,
        keepalive: float = 30.0,
        connect_timeout: float = 2.0,
        ssl_context: ssl.SSLContext | None = None,
        proxies: Proxies | None = None,
        dns_ttl: float = DNS_TTL,
        happy_eyeballs_delay: float | None = HAPPY_EYEBALLS_DELAY,
        quiet_check_after: float = QUIET_CHECK_AFTER,
    ) -> None:
        if limit < 1:
            raise ValueError(f"limit must be at least 1, not {limit}")
        if keepalive < 0 or connect_timeout <= 0:
            raise ValueError("keepalive must be >= 0 and connect_timeout > 0")
        self._limit = limit
        self._keepalive = keepalive
        self._connect_timeout = connect_timeout
        self._ssl_context = ssl_context
        self._quiet_check_after = quiet_check_after
        self._connector = Connector(
            connect_timeout=connect_timeout,
            ssl_context=self._ssl,
            proxies=proxies or Proxies(),
            dns_ttl=dns_ttl,
            happy_eyeballs_delay=happy_eyeballs_delay,
        )
        self._hosts: dict[ConnKey, _Host] = {}
        self._targets: dict[str, H1Target] = {}
        self._closed = False

    def handle_async_request(
        self, request: UpstreamRequest
    ) -> Coroutine[object, object, H1Response]:
        """The transport seam (`bastion.models.transport`): `request()` to an absolute
        URL, parsed once per distinct URL; `H1InvalidURL` for one it cannot use.

        Not a coroutine function itself but one that returns `request()`'s coroutine:
        awaited the same, without one more coroutine frame per call on the hot path
        (and an unusable URL is refused at the call, before anything is awaited)."""
        target = self._targets.get(request.url)
        if target is None:
            try:
                target = H1Target.parse(request.url)
            except ValueError as exc:
                raise H1InvalidURL(str(exc)) from exc
            if len(self._targets) < _TARGET_CACHE:
                self._targets[request.url] = target
        return self.request(request.method, target, request.headers, request.body)

    async def request(
        self, method: str, target: H1Target, headers: Mapping[str, str], body: bytes | None
    ) -> H1Response:
        """Send a request; return once the response's status line and headers are in."""
        if self._closed:
            raise RuntimeError("H1Pool is closed")
        key = (target.scheme, target.host, target.port)
        proxy = self._connector.proxy_for(key) if target.scheme == "http" else None
        head = request_head(method, target, headers, body, proxy)
        host = self._hosts.get(key)
        if host is None:
            host = self._hosts[key] = _Host()
        conn = self._take_idle(host) if host.idle else None
        reused = conn is not None
        if conn is None:
            conn, reused = await self._acquire(host, key)
        head_only = method == "HEAD"
        try:
            try:
                await conn.send(head, body, head_only)
            except H1Disconnected:
                if not reused or conn.got_bytes or method not in _IDEMPOTENT:
                    raise
                # The keep-alive race: the server closed the idle connection as we
                # sent. Nothing was answered and sending it again is harmless (RFC 9110
                # §9.2.2), so once more on a fresh connection. Never a POST: it may
                # have been read, and an LLM call sent twice is billed twice.
                conn = await self._replace(host, conn, key)
                await conn.send(head, body, head_only)
        except BaseException:
            self._drop(host, conn)
            raise
        return H1Response(conn, self._finish)

    async def aclose(self) -> None:
        """Close every connection; later requests raise RuntimeError. Idempotent."""
        self._closed = True
        for host in self._hosts.values():
            while host.waiters:
                waiter = host.waiters.popleft()
                if not waiter.done():
                    waiter.set_exception(RuntimeError("H1Pool is closed"))
            for conn in list(host.conns):
                conn.on_idle_lost = None
                conn.abort()
            host.idle.clear()
        await asyncio.sleep(0)  # let the transports report connection_lost

    # --- slots and connections ---------------------------------------------------------

    async def _acquire(self, host: _Host, key: ConnKey) -> tuple[Connection, bool]:
        """A connection for one exchange when none is idle (a slot, or a wait for one),
        and whether it carried an exchange before."""
        if host.count < self._limit:
            host.count += 1
        else:
            waiter: asyncio.Future[Connection | None] = asyncio.get_running_loop().create_future()
            host.waiters.append(waiter)
            try:
                handed = await waiter
            except asyncio.CancelledError:
                if waiter.done() and not waiter.cancelled():
                    # Handed a connection or slot just as we were cancelled: pass it on.
                    self._pass_on(host, waiter.result())
                else:
                    with contextlib.suppress(ValueError):
                        host.waiters.remove(waiter)
                raise
            if handed is not None:
                return handed, True
        try:
            conn = await self._connector.connect(key)
        except BaseException:
            self._free_slot(host)
            raise
        if self._closed:
            conn.abort()
            self._free_slot(host)
            raise RuntimeError("H1Pool is closed")
        conn.counted = True
        host.conns.add(conn)
        return conn, False

    def _take_idle(self, host: _Host) -> Connection | None:
        """The newest idle connection still fit for use; stale ones are dropped."""
        idle = host.idle
        now = asyncio.get_running_loop().time()
        oldest_allowed = now - self._keepalive
        ask_socket_before = now - self._quiet_check_after
        while idle:
            conn = idle.pop()
            conn.on_idle_lost = None
            if (
                conn.idle_since >= oldest_allowed
                and conn.usable()
                and (conn.idle_since > ask_socket_before or conn.quiet())
            ):
                return conn
            self._drop(host, conn)
        return None

    async def _replace(self, host: _Host, old: Connection, key: ConnKey) -> Connection:
        """A new connection in `old`'s slot (`old` keeps it if connecting fails)."""
        old.abort()
        conn = await self._connector.connect(key)
        host.conns.discard(old)
        old.counted = False
        conn.counted = True
        host.conns.add(conn)
        return conn

    def _ssl(self) -> ssl.SSLContext:
        if self._ssl_context is None:
            self._ssl_context = ssl.create_default_context()
        return self._ssl_context

    def _finish(self, conn: Connection, body_consumed: bool) -> None:
        """H1Response.release()/close(): back to the pool or gone."""
        host = self._hosts[conn.key]
        if body_consumed and conn.reusable and conn.usable() and not self._closed:
            conn.end_exchange()
            self._put_back(host, conn)
        else:
            self._drop(host, conn)

    def _put_back(self, host: _Host, conn: Connection) -> None:
        now = asyncio.get_running_loop().time()
        conn.idle_since = now
        while host.waiters:
            waiter = host.waiters.popleft()
            if not waiter.done():
                waiter.set_result(conn)
                return
        conn.on_idle_lost = self._idle_lost
        idle = host.idle
        idle.append(conn)
        # The cheap sweep: only the oldest idle connections, so O(1) per release.
        while idle and idle[0].idle_since < now - self._keepalive:
            self._drop(host, idle.popleft())

    def _pass_on(self, host: _Host, handed: Connection | None) -> None:
        if handed is None:
            self._free_slot(host)
        else:
            self._put_back(host, handed)

    def _idle_lost(self, conn: Connection) -> None:
        host = self._hosts[conn.key]
        with contextlib.suppress(ValueError):
            host.idle.remove(conn)
        self._drop(host, conn)

    def _drop(self, host: _Host, conn: Connection) -> None:
        conn.on_idle_lost = None
        conn.abort()
        host.conns.discard(conn)
        if conn.counted:
            conn.counted = False
            self._free_slot(host)

    def _free_slot(self, host: _Host) -> None:
        while host.waiters:
            waiter = host.waiters.popleft()
            if not waiter.done():
                waiter.set_result(None)  # the slot passes to the first waiter
                return
        host.count -= 1


__all__ = [
    "H1Body",
    "H1ConnectError",
    "H1ConnectTimeout",
    "H1Disconnected",
    "H1Error",
    "H1InvalidURL",
    "H1Pool",
    "H1ProtocolError",
    "H1Response",
    "H1TLSError",
    "H1Target",
]
