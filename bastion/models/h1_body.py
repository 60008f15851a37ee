"""The body side of `bastion.models.h1`: a response body as it arrives (`H1Body`),
with read flow control, and the decoding of gzip/deflate Content-Encoding."""

from __future__ import annotations

import asyncio
import zlib
from collections import deque
from collections.abc import Callable
from typing import Protocol

from bastion.models.h1_errors import H1Error

# Unread body bytes above which the socket is no longer read (the server then slows
# down on TCP back-pressure), and below which reading resumes.
HIGH_WATER = 64 * 1024
LOW_WATER = 16 * 1024


class BodySource(Protocol):
    """What a body needs of its connection."""

    loop: asyncio.AbstractEventLoop

    def pause_reading(self) -> None: ...
    def resume_reading(self) -> None: ...
    def abort(self) -> None: ...


class Decoder:
    """`Content-Encoding: gzip | deflate`, undone as the body arrives."""

    __slots__ = ("_deflate", "_started", "_z")

    def __init__(self, encoding: str) -> None:
        self._deflate = encoding == "deflate"
        self._started = False
        self._z = zlib.decompressobj(zlib.MAX_WBITS | (0 if self._deflate else 16))

    def decompress(self, data: bytes) -> bytes:
        try:
            out = self._z.decompress(data)
        except zlib.error:
            if not self._deflate or self._started:
                raise
            # "deflate" should be zlib-wrapped (RFC 9110 §8.4.1.2); some servers send
            # the raw stream, which only shows in the first bytes.
            self._z = zlib.decompressobj(-zlib.MAX_WBITS)
            out = self._z.decompress(data)
        self._started = True
        return out

    def flush(self) -> bytes:
        return self._z.flush()


def decoder_for(encoding: str | None) -> Decoder | None:
    """The decoder for a Content-Encoding value; None for identity or one we don't know
    (the body is then passed through as sent, header included)."""
    if encoding is None:
        return None
    encoding = encoding.strip().lower()
    if encoding in ("gzip", "x-gzip", "deflate"):
        return Decoder("gzip" if encoding == "x-gzip" else encoding)
    return None


class H1Body:
    """A response body as it arrives; duck-types the parts of `aiohttp.StreamReader`
    the models use (`read`, `iter_any`, `is_eof`).

    After a failure every read raises the same error. A read cancelled while waiting
    closes the connection: the rest of the body would otherwise be left on the wire.
    """

    __slots__ = ("_chunks", "_conn", "_eof", "_error", "_size", "_waiter", "on_cancel")

    def __init__(self, conn: BodySource) -> None:
        self._conn = conn
        self._chunks: deque[bytes] = deque()
        self._size = 0
        self._eof = False
        self._error: H1Error | None = None
        self._waiter: asyncio.Future[None] | None = None
        # Called when a read is cancelled; the response points it at its close().
        self.on_cancel: Callable[[], None] = conn.abort

    # --- fed by the connection ---------------------------------------------------------

    def feed(self, data: bytes) -> None:
        self._chunks.append(data)
        self._size += len(data)
        if self._size > HIGH_WATER:
            self._conn.pause_reading()
        self._wake()

    def feed_eof(self) -> None:
        self._eof = True
        self._wake()

    def fail(self, error: H1Error) -> None:
        if self._error is None and not self._eof:
            self._error = error
        self._wake()

    def _wake(self) -> None:
        waiter = self._waiter
        if waiter is not None:
            self._waiter = None
            if not waiter.done():
                waiter.set_result(None)

    # --- read by the caller ------------------------------------------------------------

    def is_eof(self) -> bool:
        """Whether the whole body was received and consumed."""
        return self._eof and not self._chunks

    async def read(self, n: int = -1) -> bytes:
        """Up to `n` bytes (all the rest for n < 0); b"" at the end of the body."""
        if n == 0:
            return b""
        if n < 0:
            while not self._eof:
                await self._wait()
            return self._take(self._size)
        while not self._chunks:
            if self._eof:
                return b""
            await self._wait()
        return self._take(n)

    async def readany(self) -> bytes:
        """Everything received so far (at least one byte); b"" at the end of the body.

        All of it at once, not one HTTP chunk at a time: a stream's events often come
        many to a network read, each in a chunk of its own, and every bytes object
        handed up costs a trip through the SSE decoder and the async layers above it."""
        chunks = self._chunks
        while not chunks:
            if self._eof:
                return b""
            await self._wait()
        if self._error is not None:
            raise self._error
        data = chunks.popleft() if len(chunks) == 1 else b"".join(chunks)
        chunks.clear()
        self._consumed(len(data))
        return data

    def iter_any(self) -> _Chunks:
        """Iterate over the body as it arrives (`readany` until the end)."""
        return _Chunks(self)

    def _take(self, n: int) -> bytes:
        chunks = self._chunks
        if self._error is not None:
            raise self._error
        first = chunks.popleft() if chunks else b""
        if len(first) > n:
            chunks.appendleft(first[n:])
            first = first[:n]
        elif chunks and len(first) < n:
            parts = [first]
            size = len(first)
            while chunks and size < n:
                chunk = chunks.popleft()
                if size + len(chunk) > n:
                    chunks.appendleft(chunk[n - size :])
                    chunk = chunk[: n - size]
                parts.append(chunk)
                size += len(chunk)
            first = b"".join(parts)
        self._consumed(len(first))
        return first

    def _consumed(self, size: int) -> None:
        self._size -= size
        if self._size <= LOW_WATER:
            self._conn.resume_reading()

    async def _wait(self) -> None:
        if self._error is not None:
            raise self._error
        waiter = self._conn.loop.create_future()
        self._waiter = waiter
        try:
            await waiter
        except asyncio.CancelledError:
            self._waiter = None
            self.on_cancel()
            raise
        if self._error is not None:
            raise self._error


class _Chunks:
    __slots__ = ("_body",)

    def __init__(self, body: H1Body) -> None:
        self._body = body

    def __aiter__(self) -> _Chunks:
        return self

    async def __anext__(self) -> bytes:
        chunk = await self._body.readany()
        if not chunk:
            raise StopAsyncIteration
        return chunk
