"""The HTTP/1.1 connection handling under the app: aiohttp's, with what it lacks.

- A request head must arrive whole within `server.header_timeout`: from the connection's
  start for its first request, from the first byte of each next one on a keep-alive
  connection. aiohttp has no such limit, so a client that never finishes its head (a
  slow-loris) would hold its connection, and its memory, for good.
- A head the parser refuses (too long, too many headers, bad method or request line) is
  answered in OpenAI's error shape, and logged as one line that quotes nothing of it:
  aiohttp answers plain text and logs a traceback quoting the offending header.
- The access log (`server.log_requests`) keeps the names of a query's parameters and
  drops their values, which may be keys (`?key=...`).

`make_runner` builds the `web.AppRunner` with all of it; `bastion serve` calls it.
"""

from __future__ import annotations

import asyncio
import datetime
import logging
from typing import Any

import structlog
from aiohttp import web
from aiohttp.abc import AbstractAccessLogger
from aiohttp.http_exceptions import (
    BadHttpMethod,
    BadStatusLine,
    HttpProcessingError,
    InvalidHeader,
    InvalidURLError,
    LineTooLong,
)
from aiohttp.web_protocol import ERROR, RequestHandler, RequestPayloadError

from bastion.config.schema import ServerSettings
from bastion.server.common import lossy_header
from bastion.server.errors import ApiError

__all__ = ["REDACTED", "RedactedAccessLogger", "head_error", "make_runner", "redacted_target"]

_log = structlog.get_logger("bastion.server")

# aiohttp's own limits, named here because the errors quote them.
MAX_LINE = 8190
MAX_FIELD = 8190
MAX_HEADERS = 128
REDACTED = "***"


# --- the access log --------------------------------------------------------------------


def redacted_target(path: str, query: str) -> str:
    """The request target with each query value replaced: `/x?key=***&model=***`. A
    parameter without `=` may itself be a secret, so it is replaced whole."""
    if not query:
        return path
    names = (
        f"{name}={REDACTED}" if sep else REDACTED
        for name, sep, _ in (item.partition("=") for item in query.split("&"))
    )
    return f"{path}?{'&'.join(names)}"


class RedactedAccessLogger(AbstractAccessLogger):
    """One line per request: peer, start time, method, path with its query's values
    redacted, protocol, status, size, seconds, user agent. No Referer: a referring page's
    address may carry a secret of its own."""

    def log(self, request: web.BaseRequest, response: web.StreamResponse, time: float) -> None:
        if request.message is ERROR:  # a refused head: `_Handler.handle_error` said it
            return
        url = request.rel_url
        started = datetime.datetime.now(datetime.UTC) - datetime.timedelta(seconds=time)
        self.logger.info(
            '%s [%s] "%s %s HTTP/%d.%d" %d %d %.4f "%s"',
            request.remote,
            started.strftime("%d/%b/%Y:%H:%M:%S %z"),
            request.method,
            redacted_target(url.raw_path, url.raw_query_string),
            request.version.major,
            request.version.minor,
            response.status,
            response.body_length,
            time,
            lossy_header(request.headers.get("User-Agent", "-")),
        )

    @property
    def enabled(self) -> bool:
        return self.logger.isEnabledFor(logging.INFO)


# --- refused heads ---------------------------------------------------------------------


def head_error(exc: HttpProcessingError) -> ApiError:
    """What a client is told of a head the parser refused. aiohttp's messages quote the
    offending bytes (a header's value may be a key), so none of them is passed on but
    the reason llhttp gives, which is fixed text."""
    if isinstance(exc, LineTooLong):
        # One exception for a long request line and a long header: the limit is the same.
        return ApiError(
            431,
            f"the request line or a header is longer than the limit of {MAX_FIELD} bytes",
            code="header_too_large",
        )
    if exc.message == "Too many headers received":
        return ApiError(
            431, f"the request has more than {MAX_HEADERS} headers", code="too_many_headers"
        )
    if isinstance(exc, BadHttpMethod):
        return ApiError(400, "the request line has no valid method", code="invalid_method")
    if isinstance(exc, BadStatusLine):
        return ApiError(400, "the request line is malformed", code="invalid_request_line")
    if isinstance(exc, InvalidURLError):
        return ApiError(400, "the request target is not a valid URL", code="invalid_url")
    if isinstance(exc, InvalidHeader):
        return ApiError(400, "a header is malformed", code="invalid_header")
    # llhttp's errors read "<reason>:\n\n  <the bytes>": the reason alone is safe.
    reason, sep, _ = exc.message.partition(":\n")
    detail = f": {reason.strip().lower()}" if sep and reason.strip() else ""
    return ApiError(400, f"the request is malformed{detail}", code="invalid_request")


class _Handler(RequestHandler):
    """aiohttp's connection handler with a deadline on each request head and errors in
    OpenAI's shape. See the module docstring."""

    __slots__ = ("_body", "_head_timeout", "_head_timer")

    def __init__(self, manager: web.Server, *, head_timeout: float, **kwargs: Any) -> None:
        super().__init__(manager, **kwargs)
        self._head_timeout = head_timeout
        self._head_timer: asyncio.TimerHandle | None = None
        # The body of the last request parsed: while it is unfinished, bytes that arrive
        # are body, not a head.
        self._body: Any = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        super().connection_made(transport)
        self._start_head_timer()

    def connection_lost(self, exc: BaseException | None) -> None:
        self._stop_head_timer()
        self._body = None  # it refers back to this handler: no cycle left for the collector
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        begins_head = bool(data) and self._head_timer is None and self._awaiting_head()
        parsed = self._request_count
        super().data_received(data)
        if self._request_count != parsed:
            # A head is complete. What follows in the same read may start the next one;
            # the parser does not say, so its clock starts with the next read. Until
            # then the connection is idle to aiohttp, and its keep-alive limit holds.
            self._stop_head_timer()
            self._body = self._messages[-1][1] if self._messages else None
        elif begins_head:
            # Started now rather than before parsing, the same instant: a head that
            # arrives whole in one read (nearly all of them) costs no timer.
            self._start_head_timer()

    def _awaiting_head(self) -> bool:
        if self._payload_parser is not None or self._upgraded:  # a WebSocket's frames
            return False
        if self._body is not None and not self._body.is_eof():
            return False
        self._body = None
        return True

    def _start_head_timer(self) -> None:
        self._head_timer = self._loop.call_later(self._head_timeout, self._head_timed_out)

    def _stop_head_timer(self) -> None:
        if self._head_timer is not None:
            self._head_timer.cancel()
            self._head_timer = None

    def _head_timed_out(self) -> None:
        self._head_timer = None
        if self.transport is None or self._force_close or self._close:
            return
        _log.info(
            "request head not complete in time: connection closed",
            peer=self.peername[0] if isinstance(self.peername, tuple) else None,
            timeout=self._head_timeout,
        )
        if self._request_in_progress or self._messages:
            # A pipelined head is late behind a request still being answered: that
            # answer goes out, then the connection closes.
            self.close()
            return
        self.transport.write(_TIMEOUT_RESPONSE)
        self.force_close()

    def log_exception(self, *args: Any, **kw: Any) -> None:
        # After a handler, aiohttp reads what is left of the body; a body that cannot be
        # read (the app has answered 400 for it) ends the connection, without a traceback.
        if isinstance(kw.get("exc_info"), RequestPayloadError):
            return
        super().log_exception(*args, **kw)

    def handle_error(
        self,
        request: web.BaseRequest,
        status: int = 500,
        exc: BaseException | None = None,
        message: str | None = None,
    ) -> web.StreamResponse:
        if isinstance(exc, HttpProcessingError):
            error = head_error(exc)
            _log.info(
                "malformed request refused",
                peer=request.remote,
                status=error.status,
                code=error.code,
            )
        elif status == 504:
            error = ApiError(504, "the request timed out", type="server_error", code="timeout")
        else:
            # Past the app's middleware, which answers every error itself: a bug.
            self.log_exception("unhandled error", exc_info=exc)
            error = ApiError(500, "internal error", type="server_error", code="internal_error")
        if request.writer.output_size > 0:
            raise ConnectionError("the response had begun: no error can follow it")
        response = error.response()
        response.force_close()
        return response


def _timeout_response() -> bytes:
    """The 408 for a connection whose head is late: written on the connection as it is,
    since there is no request to answer."""
    error = ApiError(408, "the request head did not arrive in time", code="request_timeout")
    body = error.response().body
    assert isinstance(body, bytes)
    head = (
        "HTTP/1.1 408 Request Timeout\r\n"
        "Content-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\n"
        "Connection: close\r\n\r\n"
    )
    return head.encode() + body


_TIMEOUT_RESPONSE = _timeout_response()


# --- the runner ------------------------------------------------------------------------


class _Server(web.Server):
    """aiohttp's server, making `_Handler`s."""

    def __init__(self, built: web.Server, head_timeout: float) -> None:
        super().__init__(
            built.request_handler,
            request_factory=built.request_factory,
            handler_cancellation=built.handler_cancellation,
            loop=built._loop,
            **built._kwargs,
        )
        self._head_timeout = head_timeout

    def __call__(self) -> RequestHandler:
        return _Handler(self, loop=self._loop, head_timeout=self._head_timeout, **self._kwargs)


class _Runner(web.AppRunner):
    __slots__ = ("_head_timeout",)

    def __init__(self, app: web.Application, head_timeout: float, **kwargs: Any) -> None:
        super().__init__(app, **kwargs)
        self._head_timeout = head_timeout

    async def _make_server(self) -> web.Server:
        return _Server(await super()._make_server(), self._head_timeout)


def make_runner(app: web.Application, settings: ServerSettings) -> web.AppRunner:
    """The runner `bastion serve` starts `app` with: a client that goes away cancels its
    handler (and so its upstream attempt), shutdown waits `drain_timeout` for streams,
    heads have `header_timeout`, idle connections `keepalive_timeout`, and requests are
    logged (redacted) if `log_requests`."""
    return _Runner(
        app,
        settings.header_timeout,
        handler_cancellation=True,
        shutdown_timeout=settings.drain_timeout,
        keepalive_timeout=settings.keepalive_timeout,
        access_log=logging.getLogger("aiohttp.access") if settings.log_requests else None,
        access_log_class=RedactedAccessLogger,
        max_line_size=MAX_LINE,
        max_field_size=MAX_FIELD,
        max_headers=MAX_HEADERS,
    )
