"""`next_or_flush`: ready items are taken without a flush; the buffer is flushed only
before the stream has to wait, and a failed flush stops the waiting stream."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from bastion.server.coalesce import next_or_flush


class Log:
    def __init__(self) -> None:
        self.lines: list[str] = []

    async def flush(self) -> None:
        self.lines.append("flush")


async def burst_then_wait(gate: asyncio.Event, log: Log) -> AsyncIterator[int]:
    try:
        for n in (1, 2, 3):  # one network read's worth: no wait between them
            yield n
        await gate.wait()
        yield 4
    except BaseException as exc:
        log.lines.append(f"stream saw {type(exc).__name__}")
        raise
    finally:
        log.lines.append("stream closed")


async def test_ready_items_come_without_a_flush_and_the_buffer_goes_out_before_a_wait():
    gate, log = asyncio.Event(), Log()
    stream = burst_then_wait(gate, log)
    for expected in (1, 2, 3):
        assert await next_or_flush(stream, log.flush) == expected
        log.lines.append(f"got {expected}")
    waiting = asyncio.create_task(next_or_flush(stream, log.flush))
    await asyncio.sleep(0)
    assert log.lines == ["got 1", "got 2", "got 3", "flush"]
    gate.set()
    assert await waiting == 4
    with pytest.raises(StopAsyncIteration):
        await next_or_flush(stream, log.flush)
    assert log.lines[-1] == "stream closed"


async def test_cancelling_a_wait_reaches_the_stream():
    gate, log = asyncio.Event(), Log()
    stream = burst_then_wait(gate, log)
    for _ in range(3):
        await next_or_flush(stream, log.flush)
    waiting = asyncio.create_task(next_or_flush(stream, log.flush))
    await asyncio.sleep(0)
    waiting.cancel()
    with pytest.raises(asyncio.CancelledError):
        await waiting
    assert log.lines[-2:] == ["stream saw CancelledError", "stream closed"]


async def test_a_failed_flush_stops_the_waiting_stream_and_is_raised():
    gate, log = asyncio.Event(), Log()
    stream = burst_then_wait(gate, log)
    for _ in range(3):
        await next_or_flush(stream, log.flush)

    async def client_gone() -> None:
        raise ConnectionResetError("client left")

    with pytest.raises(ConnectionResetError):
        await next_or_flush(stream, client_gone)
    assert log.lines == ["stream saw CancelledError", "stream closed"]
    with pytest.raises(StopAsyncIteration):  # closed for good
        await next_or_flush(stream, log.flush)
