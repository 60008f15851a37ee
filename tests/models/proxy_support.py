"""A forward HTTP proxy on loopback for the transport tests: CONNECT tunnels for https
targets, absolute-form requests for http ones, each recorded as it arrives.

It is as small as a proxy can be and still be real: it reads the request head, checks
`Proxy-Authorization` when it is given credentials to expect, opens its own
connection to the target and then copies bytes both ways until either side closes.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
from dataclasses import dataclass
from urllib.parse import urlsplit


@dataclass(frozen=True)
class Seen:
    """One request head the proxy received."""

    method: str
    target: str  # "host:port" for CONNECT, the absolute URL otherwise
    authorization: str | None


class ForwardProxy:
    """`async with ForwardProxy() as proxy:` … `proxy.url`, `proxy.seen`."""

    def __init__(self, *, user: str | None = None, password: str | None = None) -> None:
        self.seen: list[Seen] = []
        self._expected = (
            "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()
            if user is not None
            else None
        )
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self.port = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def url_with(self, user: str, password: str) -> str:
        return f"http://{user}:{password}@127.0.0.1:{self.port}"

    async def __aenter__(self) -> ForwardProxy:
        self._server = await asyncio.start_server(self._client, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        assert self._server is not None
        self._server.close()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    async def _client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        try:
            await self._serve(reader, writer)
        except (ConnectionError, asyncio.IncompleteReadError, asyncio.CancelledError):
            pass
        finally:
            writer.close()
            self._tasks.discard(task)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head = await reader.readuntil(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        method, target, _ = lines[0].split(" ", 2)
        fields = {}
        for line in lines[1:]:
            if ":" in line:
                name, value = line.split(":", 1)
                fields[name.strip().lower()] = value.strip()
        authorization = fields.get("proxy-authorization")
        self.seen.append(Seen(method, target, authorization))
        if self._expected is not None and authorization != self._expected:
            writer.write(b"HTTP/1.1 407 Proxy Authentication Required\r\nContent-Length: 0\r\n\r\n")
            await writer.drain()
            return
        if method == "CONNECT":
            host, _, port = target.rpartition(":")
            up_reader, up_writer = await asyncio.open_connection(host.strip("[]"), int(port))
            writer.write(b"HTTP/1.1 200 Connection established\r\n\r\n")
            await self._pipe(reader, writer, up_reader, up_writer)
            return
        url = urlsplit(target)
        up_reader, up_writer = await asyncio.open_connection(url.hostname, url.port or 80)
        origin = (url.path or "/") + (f"?{url.query}" if url.query else "")
        kept = "".join(
            f"{ln}\r\n" for ln in lines[1:] if ln and not ln.lower().startswith("proxy-")
        )
        up_writer.write(f"{method} {origin} HTTP/1.1\r\n{kept}\r\n".encode())
        await self._pipe(reader, writer, up_reader, up_writer)

    @staticmethod
    async def _pipe(
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        up_reader: asyncio.StreamReader,
        up_writer: asyncio.StreamWriter,
    ) -> None:
        async def copy(src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
            with contextlib.suppress(ConnectionError):
                while data := await src.read(65536):
                    dst.write(data)
                    await dst.drain()
            dst.close()

        try:
            await asyncio.gather(copy(reader, up_writer), copy(up_reader, writer))
        finally:
            up_writer.close()
