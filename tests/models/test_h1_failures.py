"""The hand-written HTTP/1.1 client against misbehaving servers: raw `asyncio` servers
that answer exactly the bytes each test needs (or none), on loopback.

Covers the error tree, interim answers, bodies read until close, and cancellation at
each stage (keep-alive races are in test_h1_keepalive.py).
"""

from __future__ import annotations

import asyncio
import socket

import pytest
from raw_server import OK, RawServer, get, slots_in_use, within

from bastion.models.h1 import (
    H1ConnectError,
    H1ConnectTimeout,
    H1Disconnected,
    H1Pool,
    H1ProtocolError,
    H1Target,
)


async def test_refused_port_is_a_connect_error(pool) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    target = H1Target.parse(f"http://127.0.0.1:{port}/")
    with pytest.raises(H1ConnectError, match=f"cannot connect to 127.0.0.1:{port}") as caught:
        await pool.request("GET", target, {}, None)
    assert isinstance(caught.value.__cause__, ConnectionRefusedError)
    assert slots_in_use(pool, target) == 0


async def test_connect_timeout_covers_a_tls_handshake_never_answered() -> None:
    async def silent(reader, writer, n) -> None:
        await reader.read()  # accept TCP, never speak TLS

    pool = H1Pool(connect_timeout=0.05)
    async with RawServer(silent) as server:
        with pytest.raises(H1ConnectTimeout, match=r"took over 0\.05 s") as caught:
            await pool.request("GET", server.target("https"), {}, None)
        assert isinstance(caught.value, TimeoutError)
        assert slots_in_use(pool, server.target("https")) == 0
    await pool.aclose()


async def test_garbage_answer_is_a_protocol_error(pool) -> None:
    async def garbage(reader, writer, n) -> None:
        await server.read_request(reader)
        writer.write(b"SSH-2.0-OpenSSH_9.6\r\n\r\n")
        await writer.drain()
        await reader.read()

    async with RawServer(garbage) as server:
        with pytest.raises(H1ProtocolError, match="malformed HTTP response") as caught:
            await pool.request("GET", server.target(), {}, None)
        assert isinstance(caught.value, ValueError)
        assert slots_in_use(pool, server.target()) == 0


async def test_endless_response_head_is_a_protocol_error(pool) -> None:
    async def endless_head(reader, writer, n) -> None:
        await server.read_request(reader)
        writer.write(b"HTTP/1.1 200 OK\r\n" + b"X-Pad: %s\r\n" % (b"a" * 1000) * 1000)
        await server.wait_until_client_leaves(reader)

    async with RawServer(endless_head) as server:
        with pytest.raises(H1ProtocolError, match="response head larger than"):
            await pool.request("GET", server.target(), {}, None)
        await within(server.gone.wait())


async def test_interim_answers_are_skipped(pool) -> None:
    async def interim(reader, writer, n) -> None:
        await server.read_request(reader)
        writer.write(b"HTTP/1.1 100 Continue\r\n\r\n")
        writer.write(b"HTTP/1.1 103 Early Hints\r\nLink: </style.css>\r\n\r\n" + OK)
        await reader.read()

    async with RawServer(interim) as server:
        resp = await pool.request("POST", server.target(), {}, b"{}")
        assert resp.status == 200
        assert "Link" not in resp.headers
        assert await resp.content.read() == b"ok"
        resp.release()


async def test_body_without_length_is_read_until_close(pool) -> None:
    async def until_close(reader, writer, n) -> None:
        await server.read_request(reader)
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: Text/Plain; charset=utf-8\r\n\r\n")
        writer.write(b"hello, ")
        await writer.drain()
        await asyncio.sleep(0.01)
        writer.write(b"world")

    async with RawServer(until_close) as server:
        resp = await pool.request("GET", server.target(), {}, None)
        assert resp.content_type == "text/plain"
        assert await resp.content.read() == b"hello, world"
        assert resp.content.is_eof()
        resp.release()
        assert await get(pool, server.target()) == b"hello, world"
        assert server.connections == 2  # such a connection is never reused


async def test_reset_mid_body_fails_every_read_with_the_same_error(pool) -> None:
    async def reset(reader, writer, n) -> None:
        await server.read_request(reader)
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n0123456789")
        await writer.drain()
        await asyncio.sleep(0.01)
        writer.transport.abort()

    async with RawServer(reset) as server:
        resp = await pool.request("GET", server.target(), {}, None)
        with pytest.raises(H1Disconnected, match="response body cut short") as first:
            await resp.content.read()
        with pytest.raises(H1Disconnected) as second:
            await resp.content.read(10)
        assert second.value is first.value
        assert not resp.content.is_eof()
        resp.release()
        assert slots_in_use(pool, server.target()) == 0


async def test_cancel_while_awaiting_headers_closes_the_connection(pool) -> None:
    async def silent_first(reader, writer, n) -> None:
        await server.read_request(reader)
        if n == 1:
            await server.wait_until_client_leaves(reader)
            return
        writer.write(OK)
        await reader.read()

    async with RawServer(silent_first) as server:
        request = asyncio.create_task(pool.request("GET", server.target(), {}, None))
        await within(server.received.wait())
        request.cancel()
        with pytest.raises(asyncio.CancelledError):
            await request
        await within(server.gone.wait())
        assert slots_in_use(pool, server.target()) == 0
        assert await get(pool, server.target()) == b"ok"  # limit=1: the slot was freed


async def test_cancel_while_reading_the_body_closes_the_connection(pool) -> None:
    async def stalls_mid_body(reader, writer, n) -> None:
        await server.read_request(reader)
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nfirst")
        await server.wait_until_client_leaves(reader)

    async with RawServer(stalls_mid_body) as server:
        resp = await pool.request("GET", server.target(), {}, None)
        assert await resp.content.read(5) == b"first"
        with pytest.raises(TimeoutError):
            async with asyncio.timeout(0.02):
                await resp.content.read()
        await within(server.gone.wait())
        assert slots_in_use(pool, server.target()) == 0
        resp.release()  # a no-op now
        assert slots_in_use(pool, server.target()) == 0


@pytest.mark.parametrize("handed_over", [False, True])
async def test_cancelled_waiter_gives_its_turn_to_the_next(pool, handed_over) -> None:
    async def answers(reader, writer, n) -> None:
        while True:
            await server.read_request(reader)
            writer.write(OK)

    async with RawServer(answers) as server:
        held = await pool.request("GET", server.target(), {}, None)  # limit=1: the slot
        waiting = asyncio.create_task(get(pool, server.target()))
        queued = asyncio.create_task(get(pool, server.target()))
        await asyncio.sleep(0.01)
        assert not waiting.done()
        assert await held.content.read() == b"ok"
        if handed_over:
            held.release()  # the first waiter is handed the connection...
            waiting.cancel()  # ...and cancelled before it runs: it must pass it on
        else:
            waiting.cancel()
            held.release()
        assert await within(queued) == b"ok"
        assert waiting.cancelled()
        assert server.connections == 1
        assert slots_in_use(pool, server.target()) == 1  # the idle connection


async def test_large_body_waits_for_a_slow_reader(pool) -> None:
    """Write flow control: the transport buffer stays bounded while the server is not
    reading, instead of holding the whole body."""
    body = b"x" * (16 * 1024 * 1024)
    resume = asyncio.Event()

    async def slow_reader(reader, writer, n) -> None:
        await reader.readuntil(b"\r\n\r\n")
        server.received.set()
        await resume.wait()
        writer.write(
            b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n"
            % len(await reader.readexactly(len(body)))
        )
        await writer.drain()

    async with RawServer(slow_reader) as server:
        headers = {"Connection": "close"}
        request = asyncio.create_task(pool.request("POST", server.target(), headers, body))
        await within(server.received.wait())
        await asyncio.sleep(0.05)
        (conn,) = pool._hosts[("http", "127.0.0.1", server.target().port)].conns
        assert conn.transport is not None
        assert conn.transport.get_write_buffer_size() <= 2 * 1024 * 1024
        resume.set()
        resp = await within(request, 5.0)
        assert resp.status == 200
        resp.close()


async def test_closed_pool_refuses_requests_and_closes_connections() -> None:
    async def answers(reader, writer, n) -> None:
        await server.read_request(reader)
        writer.write(OK)
        await server.wait_until_client_leaves(reader)

    pool = H1Pool()
    async with RawServer(answers) as server:
        assert await get(pool, server.target()) == b"ok"
        await pool.aclose()
        await within(server.gone.wait())
        with pytest.raises(RuntimeError, match="closed"):
            await pool.request("GET", server.target(), {}, None)


# --- requests refused before sending -------------------------------------------------------


@pytest.mark.parametrize(
    "headers",
    [{"X-Evil": "a\r\nInjected: yes"}, {"X-Evil\r\nInjected": "yes"}, {"Content-Length": "1"}],
)
async def test_unsafe_headers_are_refused(pool, headers) -> None:
    with pytest.raises(ValueError):
        await pool.request("GET", H1Target.parse("http://127.0.0.1:9/"), headers, None)


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("http://api.example.com/v1", H1Target("http", "api.example.com", 80, "/v1")),
        ("HTTPS://API.example.com", H1Target("https", "api.example.com", 443, "/")),
        (
            "http://127.0.0.1:8080/a b?x=1&y=é#f",
            H1Target("http", "127.0.0.1", 8080, "/a%20b?x=1&y=%C3%A9"),
        ),
        ("https://[::1]:8443/v1", H1Target("https", "::1", 8443, "/v1")),
    ],
)
def test_target_parse(url, expected) -> None:
    assert H1Target.parse(url) == expected


def test_target_authority_names_non_default_ports_only() -> None:
    assert H1Target.parse("https://[::1]:8443/").authority == "[::1]:8443"
    assert H1Target.parse("http://example.com:80/").authority == "example.com"


@pytest.mark.parametrize(
    ("url", "problem"),
    [
        ("ftp://example.com/", "unsupported URL scheme 'ftp'"),
        ("example.com/v1", "unsupported URL scheme ''"),
        ("http:///v1", "no host"),
        ("http://example.com:99999/", "invalid URL"),
        ("http://user:secret@example.com/", "credentials in the URL"),
    ],
)
def test_target_parse_names_the_problem(url, problem) -> None:
    with pytest.raises(ValueError, match=problem) as caught:
        H1Target.parse(url)
    assert "secret" not in str(caught.value)
