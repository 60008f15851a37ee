"""The hand-written HTTP/1.1 client against a real aiohttp server on loopback: bodies in
every framing, keep-alive reuse and expiry, the pool limit, flow control both ways, TLS.

Misbehaving servers (resets, garbage, races, cancellation) are in test_h1_failures.py.
"""

from __future__ import annotations

import asyncio
import gzip
import hashlib
import ssl
import zlib
from collections.abc import AsyncIterator

import pytest
import trustme
from aiohttp import web

from bastion.models.h1 import H1Pool, H1Target, H1TLSError
from bastion.models.h1_body import HIGH_WATER

BIG = 1024 * 1024
PAYLOAD = b"0123456789abcdef" * 4096  # 64 KiB


class Server:
    """An aiohttp.web upstream that reports, per request, the client's port."""

    def __init__(self) -> None:
        self.url = ""
        self.in_flight = 0
        self.max_in_flight = 0
        self.peer_ports: set[int] = set()
        self._runner: web.AppRunner | None = None

    def target(self, path: str) -> H1Target:
        return H1Target.parse(self.url + path)

    async def start(self, ssl_context: ssl.SSLContext | None = None) -> None:
        # Room above the largest upload: aiohttp before 3.14 refuses a body of exactly
        # its default limit (1 MiB), which would test aiohttp rather than our client.
        app = web.Application(client_max_size=2 * BIG)
        app.router.add_route("*", "/echo", self.echo)
        app.router.add_get("/chunked", self.chunked)
        app.router.add_get("/encoded/{coding}", self.encoded)
        app.router.add_get("/slow", self.slow)
        app.router.add_post("/upload", self.upload)
        app.router.add_get("/big", self.big)
        self._runner = web.AppRunner(app, shutdown_timeout=0.2, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0, ssl_context=ssl_context)
        await site.start()
        port = self._runner.addresses[0][1]
        self.url = f"{'https' if ssl_context else 'http'}://127.0.0.1:{port}"

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    @staticmethod
    def peer_port(request: web.Request) -> int:
        assert request.transport is not None
        return int(request.transport.get_extra_info("peername")[1])

    async def echo(self, request: web.Request) -> web.StreamResponse:
        headers = {
            "X-Peer-Port": str(self.peer_port(request)),
            "X-Accept-Encoding": request.headers.get("Accept-Encoding", "none"),
            "X-Host": request.headers.get("Host", ""),
            "Set-Cookie": "a=1",
        }
        body = await request.read()
        resp = web.Response(body=body, headers=headers, content_type="application/json")
        resp.headers.add("Set-Cookie", "b=2")
        return resp

    async def chunked(self, request: web.Request) -> web.StreamResponse:
        resp = web.StreamResponse()
        resp.enable_chunked_encoding()
        await resp.prepare(request)
        for part in (b"first,", b"second,", b"third"):
            await resp.write(part)
            await asyncio.sleep(0.005)  # separate packets: separate chunks
        await resp.write_eof()
        return resp

    async def encoded(self, request: web.Request) -> web.StreamResponse:
        coding = request.match_info["coding"]
        if coding == "gzip":
            body, header = gzip.compress(PAYLOAD), "gzip"
        elif coding == "deflate":
            body, header = zlib.compress(PAYLOAD), "deflate"
        else:  # the raw deflate stream some servers send as "deflate"
            squeeze = zlib.compressobj(wbits=-zlib.MAX_WBITS)
            body, header = squeeze.compress(PAYLOAD) + squeeze.flush(), "deflate"
        return web.Response(body=body, headers={"Content-Encoding": header})

    async def slow(self, request: web.Request) -> web.StreamResponse:
        self.peer_ports.add(self.peer_port(request))
        self.in_flight += 1
        self.max_in_flight = max(self.max_in_flight, self.in_flight)
        try:
            await asyncio.sleep(0.03)
        finally:
            self.in_flight -= 1
        return web.Response(text="done")

    async def upload(self, request: web.Request) -> web.StreamResponse:
        body = await request.read()
        return web.Response(text=f"{len(body)}:{hashlib.sha256(body).hexdigest()}")

    async def big(self, request: web.Request) -> web.StreamResponse:
        resp = web.StreamResponse(headers={"Content-Length": str(BIG)})
        await resp.prepare(request)
        for _ in range(BIG // len(PAYLOAD)):
            await resp.write(PAYLOAD)
        await resp.write_eof()
        return resp


@pytest.fixture
async def server() -> AsyncIterator[Server]:
    upstream = Server()
    await upstream.start()
    yield upstream
    await upstream.stop()


@pytest.fixture
async def pool() -> AsyncIterator[H1Pool]:
    client = H1Pool(connect_timeout=1.0)
    yield client
    await client.aclose()


async def fetch(pool: H1Pool, target: H1Target, body: bytes | None = None) -> tuple[int, bytes]:
    resp = await pool.request("POST" if body is not None else "GET", target, {}, body)
    try:
        return resp.status, await resp.content.read()
    finally:
        resp.release()


async def peer_port_of(pool: H1Pool, server: Server) -> int:
    resp = await pool.request("GET", server.target("/echo"), {}, None)
    await resp.content.read()
    resp.release()
    return int(resp.headers["X-Peer-Port"])


async def test_content_length_body_is_read_whole(server, pool) -> None:
    headers = {"Content-Type": "application/json"}
    resp = await pool.request("POST", server.target("/echo"), headers, b'{"a": 1}')
    assert (resp.status, resp.reason) == (200, "OK")
    assert resp.headers["content-length"] == "8"
    assert resp.headers.getall("set-cookie") == ["a=1", "b=2"]
    assert resp.content_type == "application/json"
    assert await resp.content.read() == b'{"a": 1}'
    assert resp.content.is_eof()
    assert await resp.content.read() == b""
    resp.release()


async def test_request_carries_host_and_no_accept_encoding(server, pool) -> None:
    resp = await pool.request("GET", server.target("/echo"), {}, None)
    await resp.content.read()
    resp.release()
    assert resp.headers["X-Accept-Encoding"] == "none"
    assert resp.headers["X-Host"] == server.url.removeprefix("http://")


async def test_chunked_body_arrives_chunk_by_chunk(server, pool) -> None:
    resp = await pool.request("GET", server.target("/chunked"), {}, None)
    assert resp.headers["Transfer-Encoding"] == "chunked"
    chunks = [chunk async for chunk in resp.content.iter_any()]
    resp.release()
    assert b"".join(chunks) == b"first,second,third"
    assert len(chunks) > 1
    assert resp.content.is_eof()


@pytest.mark.parametrize("coding", ["gzip", "deflate", "raw-deflate"])
async def test_compressed_body_is_decompressed(server, pool, coding) -> None:
    status, body = await fetch(pool, server.target(f"/encoded/{coding}"))
    assert (status, body) == (200, PAYLOAD)


async def test_head_answer_has_no_body_whatever_its_content_length(server, pool) -> None:
    resp = await pool.request("HEAD", server.target("/big"), {}, None)
    assert (resp.status, resp.headers["Content-Length"]) == (200, str(BIG))
    assert await resp.content.read() == b""
    assert resp.content.is_eof()
    resp.release()
    assert (await fetch(pool, server.target("/echo"), b"after"))[1] == b"after"


async def test_sequential_requests_reuse_one_connection(server, pool) -> None:
    ports = {await peer_port_of(pool, server) for _ in range(3)}
    assert len(ports) == 1


async def test_connection_idle_longer_than_keepalive_is_not_reused(server) -> None:
    pool = H1Pool(keepalive=0.02)
    try:
        first = await peer_port_of(pool, server)
        await asyncio.sleep(0.06)
        assert await peer_port_of(pool, server) != first
    finally:
        await pool.aclose()


async def test_pool_limit_caps_connections_and_every_caller_is_served(server) -> None:
    pool = H1Pool(limit=2)
    try:
        results = await asyncio.gather(*(fetch(pool, server.target("/slow")) for _ in range(5)))
    finally:
        await pool.aclose()
    assert results == [(200, b"done")] * 5
    assert server.max_in_flight == 2
    assert len(server.peer_ports) == 2


async def test_released_unread_body_closes_the_connection(server, pool) -> None:
    first = await peer_port_of(pool, server)
    resp = await pool.request("GET", server.target("/big"), {}, None)
    resp.release()  # body not read: must not be reused
    assert await peer_port_of(pool, server) != first


async def test_large_request_body_is_sent_whole(server, pool) -> None:
    body = bytes(range(256)) * (BIG // 256)
    status, answer = await fetch(pool, server.target("/upload"), body)
    assert (status, answer.decode()) == (200, f"{BIG}:{hashlib.sha256(body).hexdigest()}")


async def test_large_response_is_streamed_with_bounded_buffering(server, pool) -> None:
    resp = await pool.request("GET", server.target("/big"), {}, None)
    await asyncio.sleep(0.05)  # not reading: the client must stop reading the socket
    # One socket read past the high-water mark at most (asyncio reads 256 KiB a time).
    assert resp.content._size <= HIGH_WATER + 256 * 1024
    received = 0
    while chunk := await resp.content.read(10_000):
        assert len(chunk) <= 10_000
        received += len(chunk)
    resp.release()
    assert received == BIG
    assert (await fetch(pool, server.target("/echo"), b"next"))[1] == b"next"


# --- TLS ---------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def tls_files(tmp_path_factory) -> tuple[str, str, str]:
    """(CA cert, server cert, server key) PEM paths for 127.0.0.1, from a throwaway CA."""
    directory = tmp_path_factory.mktemp("tls")
    ca = trustme.CA()
    leaf = ca.issue_cert("127.0.0.1", "localhost")
    paths = (directory / "ca.pem", directory / "cert.pem", directory / "key.pem")
    ca.cert_pem.write_to_path(str(paths[0]))
    leaf.cert_chain_pems[0].write_to_path(str(paths[1]))
    leaf.private_key_pem.write_to_path(str(paths[2]))
    return str(paths[0]), str(paths[1]), str(paths[2])


@pytest.fixture
async def tls_server(tls_files) -> AsyncIterator[Server]:
    _, cert, key = tls_files
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert, key)
    upstream = Server()
    await upstream.start(ssl_context=context)
    yield upstream
    await upstream.stop()


async def test_https_request_with_trusted_certificate(tls_server, tls_files) -> None:
    pool = H1Pool(ssl_context=ssl.create_default_context(cafile=tls_files[0]))
    try:
        assert await fetch(pool, tls_server.target("/echo"), b"over tls") == (200, b"over tls")
        ports = {await peer_port_of(pool, tls_server) for _ in range(2)}
        assert len(ports) == 1
    finally:
        await pool.aclose()


async def test_untrusted_certificate_is_a_tls_error(tls_server) -> None:
    pool = H1Pool(ssl_context=ssl.create_default_context())
    try:
        with pytest.raises(H1TLSError, match="TLS handshake") as caught:
            await pool.request("GET", tls_server.target("/echo"), {}, None)
        assert isinstance(caught.value, ConnectionError)
        assert isinstance(caught.value.__cause__, ssl.SSLError)
    finally:
        await pool.aclose()
