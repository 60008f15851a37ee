"""The h1 pool's keep-alive connections against servers that close them: when a request
is sent again on a new connection (never a POST once written) and when a connection is
dropped before use."""

from __future__ import annotations

import asyncio

import pytest
from raw_server import OK, RawServer, get, slots_in_use, within

from bastion.models.h1 import H1Disconnected, H1Pool


async def test_reused_connection_closed_as_we_send_is_retried_once(pool) -> None:
    async def closes_after_first_answer(reader, writer, n) -> None:
        await server.read_request(reader)
        writer.write(OK)
        if n == 1:
            # Keep-alive promised, then the second request is read and dropped: the
            # race of a server closing an idle connection as the client sends.
            await server.read_request(reader)
            return
        await reader.read()

    async with RawServer(closes_after_first_answer) as server:
        assert await get(pool, server.target()) == b"ok"
        assert await get(pool, server.target()) == b"ok"
        assert (server.connections, server.requests) == (2, 3)


async def test_post_read_then_dropped_on_a_reused_connection_is_not_sent_again(pool) -> None:
    # An LLM call sent twice is billed twice: once its bytes may have been read, a POST
    # is never sent again; the caller gets the connection error and decides.
    async def reads_the_second_request_and_leaves(reader, writer, n) -> None:
        await server.read_request(reader)
        writer.write(OK)
        await server.read_request(reader)  # read, never answered
        writer.transport.abort()

    async with RawServer(reads_the_second_request_and_leaves) as server:
        target = server.target()
        resp = await pool.request("POST", target, {}, b'{"n": 1}')
        assert await resp.content.read() == b"ok"
        resp.release()
        with pytest.raises(H1Disconnected, match="server disconnected"):
            await within(pool.request("POST", target, {}, b'{"n": 2}'))
        await asyncio.sleep(0.05)  # a second connection, had there been one, is in
        assert (server.connections, server.requests) == (1, 2)
        assert slots_in_use(pool, target) == 0


async def test_idle_connection_whose_close_the_loop_has_not_seen_is_not_used() -> None:
    # Every idle connection's socket is asked here (in use, only those idle over a
    # second are: when servers close idle connections). The server closes right after
    # answering. Whether the loop has reported that
    # close yet or not (here: not, it comes in the loop turn after this one), the next
    # POST must go out on a new connection, once.
    async def answers_and_closes(reader, writer, n) -> None:
        await server.read_request(reader)
        writer.write(OK)
        await writer.drain()
        writer.transport.write_eof()
        closed.set()
        await reader.read()

    closed = asyncio.Event()
    pool = H1Pool(quiet_check_after=0)
    async with RawServer(answers_and_closes) as server:
        target = server.target()
        resp = await pool.request("POST", target, {}, b"{}")
        assert await resp.content.read() == b"ok"
        resp.release()
        await closed.wait()
        resp = await pool.request("POST", target, {}, b"{}")
        assert await resp.content.read() == b"ok"
        resp.release()
        assert (server.connections, server.requests) == (2, 2)
    await pool.aclose()


async def test_fresh_connection_that_fails_is_not_retried(pool) -> None:
    async def drops_every_request(reader, writer, n) -> None:
        await server.read_request(reader)

    async with RawServer(drops_every_request) as server:
        with pytest.raises(H1Disconnected, match="server disconnected"):
            await pool.request("POST", server.target(), {}, b"{}")
        assert (server.connections, server.requests) == (1, 1)
        assert slots_in_use(pool, server.target()) == 0


async def test_idle_connection_closed_by_the_server_is_never_handed_out(pool) -> None:
    async def answers_once(reader, writer, n) -> None:
        await server.read_request(reader)
        writer.write(OK)
        await writer.drain()

    async with RawServer(answers_once) as server:
        target = server.target()
        assert await get(pool, target) == b"ok"
        for _ in range(2000):  # the pool notices the close by itself, within 2 s
            if not slots_in_use(pool, target):
                break
            await asyncio.sleep(0.001)
        else:
            pytest.fail("the pool kept a connection the server closed")
        assert await get(pool, target) == b"ok"
        assert (server.connections, server.requests) == (2, 2)
