"""One HTTP/1.1 connection of `bastion.models.h1`: an asyncio Protocol fed to httptools,
and the response it yields (its body stream is `h1_body.H1Body`).

A connection carries one exchange at a time. `send()` writes the request and waits for
the final response head; the body then flows into an `H1Body` while the caller reads
it. Which connection to use, and what happens to it afterwards, is the pool's business
(`H1Response.release()`/`close()` hand it back through the `finish` callback).
"""

from __future__ import annotations

import asyncio
import select
import zlib
from collections.abc import Callable
from typing import TypeAlias, cast

import httptools
from multidict import CIMultiDict, CIMultiDictProxy

from bastion.models.h1_body import Decoder, H1Body, decoder_for
from bastion.models.h1_errors import H1Disconnected, H1Error, H1ProtocolError

# A body up to this size goes out with its head in one write; above it, in slices of
# this size, each waiting for the transport to drain (bounded buffering).
WRITE_CHUNK = 64 * 1024
# A response head (interim answers included) larger than this is refused: aiohttp allows
# 8 KiB a line; an upstream sending more is broken or hostile.
MAX_HEAD = 64 * 1024

# Linux reports a peer's half-close by itself with this; elsewhere POLLIN covers EOF.
_POLLRDHUP = getattr(select, "POLLRDHUP", 0)

ConnKey: TypeAlias = tuple[str, str, int]


class Connection(asyncio.Protocol):
    """One keep-alive connection. The pool owns it; `send()` runs one exchange on it."""

    __slots__ = (
        "_body",
        "_complete",
        "_decoder",
        "_drain",
        "_got_bytes",
        "_head",
        "_head_only",
        "_interim",
        "_parser",
        "_poll",
        "_pre_bytes",
        "_raw",
        "_reading_paused",
        "_write_paused",
        "closed",
        "counted",
        "headers",
        "idle_since",
        "key",
        "loop",
        "on_idle_lost",
        "reason",
        "reusable",
        "status",
        "transport",
    )

    def __init__(self, loop: asyncio.AbstractEventLoop, key: ConnKey) -> None:
        self.loop = loop
        self.key = key
        self.transport: asyncio.Transport | None = None
        self._parser = httptools.HttpResponseParser(self)
        self.closed = False
        self.counted = False  # holds one of the pool's slots for its key
        self.idle_since = 0.0
        self.on_idle_lost: Callable[[Connection], None] | None = None
        self.reusable = False
        self._reading_paused = False
        self._write_paused = False
        self._drain: asyncio.Future[None] | None = None
        self._head: asyncio.Future[None] | None = None  # set while an exchange runs
        self.status = 0
        self.reason = b""
        self.headers: CIMultiDictProxy[str] | None = None
        self._raw: list[tuple[str, str]] = []
        self._body: H1Body | None = None
        self._decoder: Decoder | None = None
        self._complete = False
        self._interim = False
        self._head_only = False
        self._got_bytes = False
        self._pre_bytes = 0
        self._poll: select.poll | None = None

    def _reset(self) -> None:
        self.status = 0
        self.reason = b""
        self.headers = None
        self._raw = []
        self._body = None
        self._decoder = None
        self._complete = False
        self._interim = False
        self._head_only = False
        self._got_bytes = False
        self._pre_bytes = 0

    @property
    def got_bytes(self) -> bool:
        """Whether any byte of the current exchange's response has arrived."""
        return self._got_bytes

    @property
    def body(self) -> H1Body:
        assert self._body is not None, "no exchange under way"
        return self._body

    def usable(self) -> bool:
        """Whether an idle connection may carry another exchange."""
        return not self.closed and self.transport is not None and not self.transport.is_closing()

    def quiet(self) -> bool:
        """Whether an idle connection has nothing to read, asked of the socket itself:
        a FIN or a TLS alert the event loop has not yet reported makes it unfit, and
        catching that before sending is what makes dropping it safe (nothing sent)."""
        return self._poll is None or not self._poll.poll(0)

    def abort(self) -> None:
        self.reusable = False
        if self.transport is not None:
            self.transport.abort()

    # --- one exchange ------------------------------------------------------------------

    async def send(self, head: bytes, body: bytes | None, head_only: bool) -> None:
        """Write the request; return once the final response head is in."""
        assert self.transport is not None and self._head is None
        self._head = future = self.loop.create_future()
        self._body = H1Body(self)
        self._head_only = head_only
        self.reusable = True
        try:
            if body is None:
                self.transport.write(head)
            elif len(body) <= WRITE_CHUNK:
                self.transport.write(head + body)
            else:
                await self._write_large(head, body)
            await future
        except BaseException:
            # Cancelled or failed: settle the future so that a later connection_lost
            # neither resolves it nor leaves an exception nobody retrieves.
            if not future.done():
                future.cancel()
            elif not future.cancelled():
                future.exception()
            raise

    def end_exchange(self) -> None:
        """The caller is done with the response; the connection may go idle."""
        self._head = None
        self._reset()

    async def _write_large(self, head: bytes, body: bytes) -> None:
        assert self.transport is not None and self._head is not None
        view = memoryview(body)
        self.transport.write(head + view[:WRITE_CHUNK])
        for start in range(WRITE_CHUNK, len(body), WRITE_CHUNK):
            if self._write_paused:
                self._drain = self.loop.create_future()
                await self._drain
            if self.closed or self._head.done():
                # An early answer (413, say) or a lost connection: stop sending. The
                # request was cut short, so the connection cannot be reused.
                self.reusable = False
                return
            self.transport.write(view[start : start + WRITE_CHUNK])

    def _wake_writer(self) -> None:
        drain, self._drain = self._drain, None
        if drain is not None and not drain.done():
            drain.set_result(None)

    def _fail(self, error: H1Error) -> None:
        self.reusable = False
        head = self._head
        if head is not None:
            if not head.done():
                head.set_exception(error)
            elif self._body is not None and not self._complete:
                self._body.fail(error)
        self._wake_writer()
        if self.transport is not None:
            self.transport.abort()

    # --- flow control ------------------------------------------------------------------

    def pause_reading(self) -> None:
        if not self._reading_paused and self.transport is not None:
            self._reading_paused = True
            self.transport.pause_reading()

    def resume_reading(self) -> None:
        if self._reading_paused and self.transport is not None:
            self._reading_paused = False
            self.transport.resume_reading()

    def pause_writing(self) -> None:
        self._write_paused = True

    def resume_writing(self) -> None:
        self._write_paused = False
        self._wake_writer()

    # --- asyncio.Protocol --------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # A stream transport, though not always an asyncio.Transport subclass (uvloop's
        # are its own classes with the same methods).
        self.transport = cast(asyncio.Transport, transport)
        sock = transport.get_extra_info("socket")
        if sock is not None and hasattr(select, "poll"):
            self._poll = select.poll()
            self._poll.register(sock.fileno(), select.POLLIN | _POLLRDHUP)

    def data_received(self, data: bytes) -> None:
        if self._head is None:
            # Bytes on an idle connection answer nothing we sent: it is unusable.
            self.abort()
            return
        self._got_bytes = True
        if self.headers is None:
            if self._pre_bytes > MAX_HEAD:
                self._fail(H1ProtocolError(f"response head larger than {MAX_HEAD} bytes"))
                return
            self._pre_bytes += len(data)
        try:
            self._parser.feed_data(data)
        except httptools.HttpParserUpgrade as exc:
            error = H1ProtocolError("server switched protocols unasked")
            error.__cause__ = exc
            self._fail(error)
        except httptools.HttpParserError as exc:
            if self._complete:
                self.abort()  # bytes after the response: keep it, but not the connection
                return
            cause = exc.__context__
            if isinstance(cause, H1Error):
                self._fail(cause)
                return
            error = H1ProtocolError(f"malformed HTTP response: {exc}")
            error.__cause__ = exc
            self._fail(error)

    def eof_received(self) -> None:
        return None  # close the transport; connection_lost follows

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self.reusable = False
        self._wake_writer()
        if self.on_idle_lost is not None:
            self.on_idle_lost(self)
        head = self._head
        if head is None or self._complete:
            return
        detail = f": {exc}" if exc is not None else ""
        if not head.done():
            error = H1Disconnected(f"server disconnected{detail}")
            error.__cause__ = exc
            head.set_exception(error)
        elif exc is None and self._reads_until_close():
            self._finish_body()
        elif self._body is not None:
            error = H1Disconnected(f"response body cut short{detail}")
            error.__cause__ = exc
            self._body.fail(error)

    def _reads_until_close(self) -> bool:
        # No Content-Length and not chunked: the body is everything until the server
        # closes (RFC 9112 §6.3 rule 8). httptools has no way to signal that EOF.
        headers = self.headers
        if headers is None or "Content-Length" in headers:
            return False
        coding = headers.get("Transfer-Encoding")
        return coding is None or "chunked" not in coding.lower()

    # --- httptools callbacks -----------------------------------------------------------

    def on_message_begin(self) -> None:
        if self._complete:
            raise H1ProtocolError("bytes after the end of the response")

    def on_status(self, status: bytes) -> None:
        self.reason = status

    def on_header(self, name: bytes, value: bytes) -> None:
        self._raw.append((name.decode("latin-1"), value.decode("latin-1")))

    def on_headers_complete(self) -> None:
        status = self._parser.get_status_code()
        if status < 200:
            # 100 Continue, 103 Early Hints: interim answers before the real one.
            self._interim = True
            self._raw = []
            return
        self.status = status
        self.headers = headers = CIMultiDictProxy(CIMultiDict(self._raw))
        encoding = headers.get("Content-Encoding")
        if encoding is not None:
            self._decoder = decoder_for(encoding)
        head = self._head
        if head is not None and not head.done():
            head.set_result(None)
        self._wake_writer()
        if self._head_only:
            # A HEAD answer has no body whatever its Content-Length says, and httptools
            # cannot be told so: end it here and never reuse the connection.
            self._finish_body()

    def on_body(self, body: bytes) -> None:
        if self._complete or self._body is None:
            return
        if self._decoder is not None:
            try:
                body = self._decoder.decompress(body)
            except zlib.error as exc:
                raise H1ProtocolError(f"cannot decode the response body: {exc}") from exc
            if not body:
                return
        self._body.feed(body)

    def on_message_complete(self) -> None:
        if self._interim:
            self._interim = False
            return
        if self._complete:
            return
        self.reusable = self.reusable and self._parser.should_keep_alive()
        self._finish_body()

    def _finish_body(self) -> None:
        self._complete = True
        if self._head_only or self.closed:
            self.reusable = False
        body = self._body
        if body is None:
            return
        if self._decoder is not None:
            tail = self._decoder.flush()
            if tail:
                body.feed(tail)
        body.feed_eof()


class H1Response:
    """A response whose head is in; its body is read from `content`.

    Call `release()` once the body is read, or `close()` to give up on it; until one
    of them the connection counts against the pool's limit.
    """

    __slots__ = ("_conn", "_finish", "content", "headers", "reason", "status")

    def __init__(self, conn: Connection, finish: Callable[[Connection, bool], None]) -> None:
        assert conn.headers is not None
        self.status = conn.status
        self.reason = conn.reason.decode("latin-1")
        self.headers: CIMultiDictProxy[str] = conn.headers
        self.content = conn.body
        self._conn: Connection | None = conn
        self._finish = finish
        self.content.on_cancel = self.close

    @property
    def content_type(self) -> str:
        """The media type without parameters, lower-case; "" if none was given."""
        value = self.headers.get("Content-Type")
        if not value:
            return ""
        return value.partition(";")[0].strip().lower()

    def release(self) -> None:
        """Give the connection back to the pool if the body was read to its end (and
        the server allows reuse); otherwise close it, as `close()` does."""
        conn, self._conn = self._conn, None
        if conn is not None:
            self._finish(conn, self.content.is_eof())

    def close(self) -> None:
        """Drop the connection, aborting the upstream request if it is still running."""
        conn, self._conn = self._conn, None
        if conn is not None:
            self._finish(conn, False)

    def __repr__(self) -> str:
        return f"<H1Response {self.status} {self.reason}>"
