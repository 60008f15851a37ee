"""How `bastion.models.h1` opens a connection: names resolved through a small cache,
addresses raced (happy eyeballs, RFC 8305), through a proxy if one applies, and TLS.

- DNS: `loop.getaddrinfo` once per (host, port) per `dns_ttl` seconds; a host whose
  addresses all fail is looked up afresh next time.
- Happy eyeballs: `aiohappyeyeballs.start_connection` tries the addresses in
  interleaved families, starting the next one `happy_eyeballs_delay` seconds after the
  previous without waiting for it to fail, so a dead IPv6 route costs 250 ms, not a
  connect timeout.
- Proxies: an https target is reached through `CONNECT host:port` and TLS is started
  inside the tunnel; an http target's requests go to the proxy in absolute form (the
  pool builds that head, see `h1._request_head`). Credentials go in
  `Proxy-Authorization` and never into an error.

`connect_timeout` bounds all of it together, as one budget.
"""

from __future__ import annotations

import asyncio
import socket
import ssl
import time
from collections.abc import Callable
from typing import Any

import aiohappyeyeballs

from bastion.models.h1_conn import MAX_HEAD, Connection, ConnKey
from bastion.models.h1_errors import H1ConnectError, H1ConnectTimeout, H1TLSError
from bastion.models.transport_options import Proxies, ProxyURL

# RFC 8305's recommended delay before racing the next address.
HAPPY_EYEBALLS_DELAY = 0.25
# How long a lookup is trusted; aiohttp's default too. Upstreams behind DNS-based load
# balancing move, so not much longer.
DNS_TTL = 10.0

AddrInfo = tuple[int, int, int, str, tuple[Any, ...]]


class DnsCache:
    """Addresses per (host, port), kept `ttl` seconds (0: every lookup asks the resolver)."""

    __slots__ = ("_entries", "_ttl")

    def __init__(self, ttl: float) -> None:
        self._ttl = ttl
        self._entries: dict[tuple[str, int], tuple[float, list[AddrInfo]]] = {}

    async def resolve(self, host: str, port: int) -> list[AddrInfo]:
        key = (host, port)
        entry = self._entries.get(key)
        now = time.monotonic()
        if entry is not None and entry[0] > now:
            return entry[1]
        loop = asyncio.get_running_loop()
        infos = await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM)
        if not infos:
            raise OSError(f"no address for {host}")
        found: list[AddrInfo] = [(f, t, p, c, a) for f, t, p, c, a in infos]
        if self._ttl > 0:
            self._entries[key] = (now + self._ttl, found)
        return found

    def forget(self, host: str, port: int) -> None:
        self._entries.pop((host, port), None)


class _Tunnel(asyncio.Protocol):
    """The proxy's answer to CONNECT: bytes up to the end of its head, nothing more."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.head: asyncio.Future[bytes] = loop.create_future()
        self._buffer = b""

    def data_received(self, data: bytes) -> None:
        self._buffer += data
        end = self._buffer.find(b"\r\n\r\n")
        if self.head.done():
            return
        if end >= 0:
            self.head.set_result(self._buffer[: end + 4])
        elif len(self._buffer) > MAX_HEAD:
            self.head.set_exception(H1ConnectError("proxy answer head too large"))

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.head.done():
            self.head.set_exception(H1ConnectError("proxy closed the connection"))


class Connector:
    """Opens `Connection`s for an `H1Pool` (see the module docstring)."""

    def __init__(
        self,
        *,
        connect_timeout: float,
        ssl_context: Callable[[], ssl.SSLContext],
        proxies: Proxies,
        dns_ttl: float = DNS_TTL,
        happy_eyeballs_delay: float | None = HAPPY_EYEBALLS_DELAY,
    ) -> None:
        self._connect_timeout = connect_timeout
        self._ssl_context = ssl_context
        self._proxies = proxies
        self._dns = DnsCache(dns_ttl)
        self._delay = happy_eyeballs_delay
        self._routes: dict[ConnKey, ProxyURL | None] = {}

    def proxy_for(self, key: ConnKey) -> ProxyURL | None:
        """The proxy requests to this (scheme, host, port) go through, if any."""
        try:
            return self._routes[key]
        except KeyError:
            proxy = self._routes[key] = self._proxies.for_target(*key)
            return proxy

    async def connect(self, key: ConnKey) -> Connection:
        scheme, host, port = key
        proxy = self.proxy_for(key)
        where = f"{host}:{port}" if proxy is None else f"{host}:{port} via proxy {proxy.where}"
        loop = asyncio.get_running_loop()
        context = self._ssl_context() if scheme == "https" else None
        try:
            async with asyncio.timeout(self._connect_timeout):
                if proxy is None:
                    sock = await self._open(host, port)
                    return await self._wrap(loop, key, sock, context, host)
                sock = await self._open(proxy.host, proxy.port)
                if context is None:
                    return await self._wrap(loop, key, sock, None, host)
                return await self._tunnel(loop, key, sock, context, proxy)
        except TimeoutError as exc:
            raise H1ConnectTimeout(
                f"connect to {where} took over {self._connect_timeout} s"
            ) from exc
        except H1ConnectError as exc:
            raise H1ConnectError(f"cannot connect to {where}: {exc}") from exc
        except ssl.SSLError as exc:  # certificate errors included; before OSError
            raise H1TLSError(f"TLS handshake with {where} failed: {exc}") from exc
        except OSError as exc:
            raise H1ConnectError(f"cannot connect to {where}: {exc}") from exc

    async def _open(self, host: str, port: int) -> socket.socket:
        """A connected TCP socket to host:port, its addresses raced."""
        infos = await self._dns.resolve(host, port)
        try:
            return await aiohappyeyeballs.start_connection(
                infos, happy_eyeballs_delay=self._delay, interleave=1
            )
        except OSError:
            self._dns.forget(host, port)  # they may have moved
            raise

    @staticmethod
    async def _wrap(
        loop: asyncio.AbstractEventLoop,
        key: ConnKey,
        sock: socket.socket,
        context: ssl.SSLContext | None,
        host: str,
    ) -> Connection:
        try:
            _, conn = await loop.create_connection(
                lambda: Connection(loop, key),
                sock=sock,
                ssl=context,
                server_hostname=host if context is not None else None,
            )
        except BaseException:
            sock.close()
            raise
        return conn

    async def _tunnel(
        self,
        loop: asyncio.AbstractEventLoop,
        key: ConnKey,
        sock: socket.socket,
        context: ssl.SSLContext,
        proxy: ProxyURL,
    ) -> Connection:
        """CONNECT through `proxy`, then TLS with the target inside the tunnel."""
        _, host, port = key
        try:
            transport, tunnel = await loop.create_connection(lambda: _Tunnel(loop), sock=sock)
        except BaseException:
            sock.close()
            raise
        try:
            authority = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
            auth = f"Proxy-Authorization: {proxy.authorization}\r\n" if proxy.authorization else ""
            transport.write(
                f"CONNECT {authority} HTTP/1.1\r\nHost: {authority}\r\n{auth}\r\n".encode()
            )
            head = await tunnel.head
            status_line = head.split(b"\r\n", 1)[0].decode("latin-1")
            parts = status_line.split(" ", 2)
            if len(parts) < 2 or not parts[0].startswith("HTTP/1.") or parts[1] != "200":
                # The status line only: a proxy's headers could echo our credentials.
                raise H1ConnectError(f"proxy refused the tunnel: {status_line[:200]!r}")
            conn = Connection(loop, key)
            tls = await loop.start_tls(transport, conn, context, server_hostname=host)
            if tls is None:  # pragma: no cover - only for a transport already closing
                raise H1ConnectError("proxy closed the tunnel")
            conn.connection_made(tls)
            return conn
        except BaseException:
            transport.abort()
            raise


__all__ = ["DNS_TTL", "HAPPY_EYEBALLS_DELAY", "Connector", "DnsCache"]
