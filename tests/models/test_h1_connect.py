"""How the h1 pool connects: lookups cached for their TTL and forgotten when their
addresses fail, and addresses raced (happy eyeballs) so that one that never answers
does not cost the connect timeout."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator, Iterator

import pytest

from bastion.models.h1 import H1ConnectError, H1ConnectTimeout, H1Pool, H1Target

# Each answer closes its connection, so each request needs a new one (and its lookup).
OK = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok"


@pytest.fixture
async def server() -> AsyncIterator[int]:
    """A loopback server answering one request per connection with OK; yields its port."""

    async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            await reader.readuntil(b"\r\n\r\n")
            writer.write(OK)
            await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()

    listener = await asyncio.start_server(answer, "127.0.0.1", 0)
    yield listener.sockets[0].getsockname()[1]
    listener.close()


@pytest.fixture
def silent_address() -> Iterator[tuple[str, int]]:
    """A loopback address whose connects are never answered: a listener with a full
    backlog that nobody accepts from, so the kernel drops further SYNs."""
    listener = socket.socket()
    listener.bind(("127.0.0.2", 0))
    listener.listen(0)
    address = listener.getsockname()
    fillers = []
    for _ in range(2):  # Linux admits backlog + 1
        filler = socket.socket()
        filler.setblocking(False)
        filler.connect_ex(address)
        fillers.append(filler)
    yield address
    for sock in [*fillers, listener]:
        sock.close()


class Resolver:
    """Stands in for the system resolver: answers `name` with `addresses`, counting;
    other names (uvloop's sock_connect looks up the IP it is given) go to the real one."""

    def __init__(self, name: str, addresses: list[tuple[str, int]]) -> None:
        self.name = name
        self.addresses = addresses
        self.lookups = 0
        self.real = asyncio.get_running_loop().getaddrinfo

    async def getaddrinfo(self, host, port, *, family=0, type=0, proto=0, flags=0):
        if host != self.name:
            return await self.real(host, port, family=family, type=type, proto=proto, flags=flags)
        self.lookups += 1
        kind = socket.SOCK_STREAM
        return [(socket.AF_INET, kind, 6, "", (ip, p or port)) for ip, p in self.addresses]


async def get(pool: H1Pool, url: str) -> bytes:
    resp = await pool.request("GET", H1Target.parse(url), {}, None)
    body = await resp.content.read()
    resp.release()
    return body


async def test_a_lookup_is_reused_within_its_ttl(server, monkeypatch) -> None:
    resolver = Resolver("upstream.test", [("127.0.0.1", server)])
    monkeypatch.setattr(asyncio.get_running_loop(), "getaddrinfo", resolver.getaddrinfo)
    pool = H1Pool(dns_ttl=60)
    try:
        for _ in range(3):
            assert await get(pool, f"http://upstream.test:{server}/") == b"ok"
    finally:
        await pool.aclose()
    assert resolver.lookups == 1


async def test_ttl_zero_asks_every_time(server, monkeypatch) -> None:
    resolver = Resolver("upstream.test", [("127.0.0.1", server)])
    monkeypatch.setattr(asyncio.get_running_loop(), "getaddrinfo", resolver.getaddrinfo)
    pool = H1Pool(dns_ttl=0)
    try:
        for _ in range(3):
            assert await get(pool, f"http://upstream.test:{server}/") == b"ok"
    finally:
        await pool.aclose()
    assert resolver.lookups == 3


async def test_addresses_that_fail_are_looked_up_again(server, monkeypatch) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        dead_port = sock.getsockname()[1]
    resolver = Resolver("upstream.test", [("127.0.0.1", dead_port)])
    monkeypatch.setattr(asyncio.get_running_loop(), "getaddrinfo", resolver.getaddrinfo)
    pool = H1Pool(dns_ttl=60)
    try:
        with pytest.raises(H1ConnectError, match=r"cannot connect to upstream\.test"):
            await get(pool, "http://upstream.test/")
        resolver.addresses = [("127.0.0.1", server)]  # the upstream moved
        assert await get(pool, "http://upstream.test/") == b"ok"
    finally:
        await pool.aclose()
    assert resolver.lookups == 2


async def test_an_address_that_never_answers_is_raced_past(
    server, silent_address, monkeypatch
) -> None:
    resolver = Resolver("upstream.test", [silent_address, ("127.0.0.1", server)])
    monkeypatch.setattr(asyncio.get_running_loop(), "getaddrinfo", resolver.getaddrinfo)
    raced = H1Pool(connect_timeout=5.0, happy_eyeballs_delay=0.05)
    one_by_one = H1Pool(connect_timeout=0.5, happy_eyeballs_delay=None)
    try:
        assert await get(raced, "http://upstream.test/") == b"ok"
        # Without racing, the silent address holds the whole connect budget.
        with pytest.raises(H1ConnectTimeout):
            await get(one_by_one, "http://upstream.test/")
    finally:
        await raced.aclose()
        await one_by_one.aclose()


async def test_a_name_that_does_not_resolve_is_a_connect_error(monkeypatch) -> None:
    async def nothing(host, port, **kwargs):
        raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")

    monkeypatch.setattr(asyncio.get_running_loop(), "getaddrinfo", nothing)
    pool = H1Pool()
    try:
        with pytest.raises(H1ConnectError, match=r"cannot connect to nowhere\.test:80"):
            await get(pool, "http://nowhere.test/")
    finally:
        await pool.aclose()
