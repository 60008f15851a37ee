"""HTTP plumbing shared by the provider adapters.

Each model holds one `HttpClient`. It owns a transport (`default_transport`: an
`H1Pool`, Bastion's own HTTP/1.1 client, see `h1.py` for why) or borrows one that is
injected — an aiohttp session or a shared pool, the seam tests and embedding
applications use (`transport.py` draws the seam). It sends
requests with the endpoint's connect and response-header bounds, turns a non-2xx answer
into an `UpstreamError`, and translates transport exceptions into the error tree
through one table, `http_errors.TRANSLATIONS`.

What is bounded here and what is not: connecting (`Timeouts.connect`) and waiting for
the response headers (`Timeouts.headers_for(stream)`). The first token, the gaps
between chunks and the whole attempt are bounded by the router around the model's
iterator, so no socket read timeout is set here.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Iterator, Mapping
from contextlib import contextmanager
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import aiohttp
import orjson
import structlog

from bastion.models.base import Endpoint
from bastion.models.h1 import H1Error, H1Pool
from bastion.models.http_errors import (
    TRANSLATIONS,
    Translation,
    body_message,
    error_message,
    scrub_secrets,
)
from bastion.models.sse import SseError
from bastion.models.transport import (
    AiohttpTransport,
    UpstreamBody,
    UpstreamRequest,
    UpstreamResponse,
    UpstreamTransport,
)
from bastion.resilience.errors import (
    ErrorKind,
    StreamBroken,
    UpstreamError,
    UpstreamTimeout,
    kind_of_message,
    kind_of_response,
    lower_headers,
    parse_retry_after,
)

# A connection pool with no bound is an outage amplifier; 100 is aiohttp's default too.
DEFAULT_POOL_LIMIT = 100
# Idle connections are kept this long: long enough to ride over gaps between requests,
# short enough to drop before typical load balancers (60 s) cut them under our feet.
KEEPALIVE_SECONDS = 30.0
# Provider error bodies are small JSON; reading more only delays the failover.
ERROR_BODY_LIMIT = 64 * 1024
# A complete() answer above this is not a chat answer: refuse rather than buffer it.
BODY_LIMIT = 64 * 1024 * 1024

_TRANSPORT_ERRORS = (aiohttp.ClientError, H1Error, OSError, SseError)

_log = structlog.get_logger("bastion.models")

# What may be injected: a transport, or an aiohttp session (wrapped in `AiohttpTransport`).
Transport = UpstreamTransport | aiohttp.ClientSession


def _json_default(value: object) -> object:
    # Request fields are typed as Mapping (often MappingProxyType) so that frozen
    # requests stay immutable; orjson only encodes real dicts natively.
    if isinstance(value, Mapping):
        return dict(value)
    raise TypeError(f"cannot encode {type(value).__name__} as JSON")


def encode_json(value: object) -> bytes:
    """A request body as JSON bytes (orjson; read-only mappings encoded as objects)."""
    return orjson.dumps(value, default=_json_default)


async def read_bounded(content: UpstreamBody, limit: int) -> tuple[bytes, bool]:
    """Read a body up to `limit` bytes; the flag says whether more was left unread."""
    parts: list[bytes] = []
    size = 0
    while size <= limit:
        chunk = await content.read(limit + 1 - size)
        if not chunk:
            return b"".join(parts), False
        parts.append(chunk)
        size += len(chunk)
    return b"".join(parts)[:limit], True


def finish_response(resp: UpstreamResponse) -> None:
    """Give the connection back to the pool if the body was read to its end; close it
    otherwise, which also aborts the upstream request (a half-read stream must never be
    released: the next request on that connection would read its leftovers)."""
    if resp.content.is_eof():
        resp.release()
    else:
        resp.close()


def default_transport(endpoint: Endpoint) -> UpstreamTransport:
    """The transport a model creates for itself when none is injected: an `H1Pool`
    sized by the endpoint's `max_concurrency`, with its proxy and TLS options (the
    environment's proxy variables are read here, once)."""
    options = endpoint.transport
    return H1Pool(
        limit=endpoint.max_concurrency or DEFAULT_POOL_LIMIT,
        keepalive=KEEPALIVE_SECONDS,
        connect_timeout=endpoint.timeouts.connect,
        ssl_context=None if options.tls.is_default else options.tls.context(),
        proxies=options.proxies(),
    )


def shown_url(url: str) -> str:
    """`url` fit for a message or a log line: no query (a proxy may carry a key there)
    and no user information."""
    parts = urlsplit(url)
    host = parts.netloc.rpartition("@")[2]
    return urlunsplit((parts.scheme, host, parts.path, "", ""))


class HttpClient:
    """Sends one endpoint's requests and speaks for its transport failures.

    With `session` given (an `UpstreamTransport` such as a shared `H1Pool`, or an
    aiohttp session), it is used and never closed here; otherwise `default_transport`
    makes one on first use, closed by `aclose()`.
    """

    def __init__(self, endpoint: Endpoint, session: Transport | None = None) -> None:
        self._endpoint = endpoint
        self._transport: UpstreamTransport | None
        if isinstance(session, aiohttp.ClientSession):
            self._transport = AiohttpTransport(session, connect_timeout=endpoint.timeouts.connect)
        else:
            self._transport = session
        self._owns_transport = session is None
        self._closed = False
        self._warned_404 = False

    def _transport_for_use(self) -> UpstreamTransport:
        if self._closed:
            raise RuntimeError(f"model for endpoint {self._endpoint.id!r} is closed")
        if self._transport is None:
            self._transport = default_transport(self._endpoint)
        return self._transport

    async def aclose(self) -> None:
        """Close the transport if this client created it. Idempotent."""
        self._closed = True
        transport, self._transport = self._transport, None
        if self._owns_transport and transport is not None:
            await transport.aclose()

    async def send(
        self,
        method: str,
        url: str,
        *,
        headers: Mapping[str, str],
        body: bytes | None = None,
        wait: float | None,
        phase: str = "headers",
    ) -> UpstreamResponse:
        """Send a request and return its 2xx response, headers read, body unread.

        `wait` bounds the time until the response headers (→ `UpstreamTimeout(phase)`);
        None sets no bound here (the caller bounds the whole call).
        A non-2xx answer raises `UpstreamError` built from its status, headers and a
        bounded excerpt of its body; transport failures are translated.
        """
        transport = self._transport_for_use()
        bound: asyncio.Timeout | None = None
        try:
            if wait is None:
                resp = await transport.handle_async_request(
                    UpstreamRequest(method, url, headers, body)
                )
            else:
                async with asyncio.timeout(wait) as bound:
                    resp = await transport.handle_async_request(
                        UpstreamRequest(method, url, headers, body)
                    )
        except TimeoutError as exc:
            # The transports' own connect timeouts are TimeoutErrors too; only an
            # expired `bound` means the headers were late.
            if bound is not None and wait is not None and bound.expired():
                raise UpstreamTimeout(phase, wait, endpoint=self._endpoint.id) from exc
            raise self.translate(exc) from exc
        except _TRANSPORT_ERRORS as exc:
            raise self.translate(exc) from exc
        if not 200 <= resp.status < 300:
            raise await self._status_error(resp, wait, method, url)
        return resp

    async def _status_error(
        self, resp: UpstreamResponse, wait: float | None, method: str, url: str
    ) -> UpstreamError:
        body = b""
        try:
            # The body is part of the answer; if it does not come, the status still speaks.
            async with asyncio.timeout(wait):
                body, _ = await read_bounded(resp.content, ERROR_BODY_LIMIT)
        except (TimeoutError, *_TRANSPORT_ERRORS):
            pass
        finally:
            finish_response(resp)
        text = self.redact(body.decode("utf-8", "replace"))
        headers = lower_headers(resp.headers)
        message = body_message(body)
        message = self.redact(message) if message else f"HTTP {resp.status} {resp.reason or ''}"
        if resp.status == 404:
            # Most often a base_url with a path too many or too few (`/v1`): say where.
            where = f"{method} {shown_url(url)}"
            message = f"{message.strip()} (HTTP 404 from {where}; is base_url right?)"
            if not self._warned_404:
                self._warned_404 = True
                _log.warning(
                    "upstream answered 404: check the endpoint's base_url",
                    endpoint=self._endpoint.id,
                    url=shown_url(url),
                )
        return UpstreamError(
            kind_of_response(resp.status, text),
            message.strip(),
            status=resp.status,
            headers=headers,
            body=text,
            retry_after=parse_retry_after(headers, now=time.time()),
            endpoint=self._endpoint.id,
        )

    async def read_json(self, resp: UpstreamResponse) -> Any:
        """Read and parse a 2xx JSON body, then give the connection back."""
        try:
            raw, too_big = await read_bounded(resp.content, BODY_LIMIT)
        except _TRANSPORT_ERRORS as exc:
            raise self.translate(exc) from exc
        finally:
            finish_response(resp)
        if too_big:
            raise self.error(ErrorKind.PROTOCOL, f"answer larger than {BODY_LIMIT} bytes")
        try:
            return orjson.loads(raw)
        except orjson.JSONDecodeError as exc:
            excerpt = raw[:500].decode("utf-8", "replace")
            raise UpstreamError(
                ErrorKind.PROTOCOL,
                f"HTTP {resp.status} answer is not JSON",
                status=resp.status,
                body=self.redact(excerpt),
                endpoint=self._endpoint.id,
            ) from exc

    async def json_instead_of_stream(self, resp: UpstreamResponse) -> UpstreamError | None:
        """The error for a 2xx JSON answer to a stream request, or None for a real stream.

        Some servers and proxies answer an in-band `{"error": ...}` with status 200 and
        no stream at all; others ignore `stream` and send the whole answer as JSON.
        """
        if resp.content_type != "application/json":
            return None
        data = await self.read_json(resp)
        message = error_message(data)
        if message is not None:
            return self.error(kind_of_message(message), self.redact(message), broken=True)
        return self.error(ErrorKind.PROTOCOL, "a JSON answer to a stream request", broken=True)

    @contextmanager
    def reading_stream(self, resp: UpstreamResponse) -> Iterator[None]:
        """Around the reading of a streamed body: transport failures become
        `StreamBroken`, and the response is released or closed however the reading
        ends (finished, failed, closed early by the consumer, or cancelled)."""
        try:
            yield
        except _TRANSPORT_ERRORS as exc:
            raise self.translate(exc, broken=True) from exc
        finally:
            finish_response(resp)

    def translate(self, exc: BaseException, *, broken: bool = False) -> UpstreamError:
        """Our error for a transport exception, from the first matching table row.

        `broken` says a 200 stream was under way: the error is then a `StreamBroken`.
        """
        row = next((r for r in TRANSLATIONS if isinstance(exc, r.exc_type)), None)
        if row is None:
            row = Translation(BaseException, ErrorKind.UNKNOWN, "unexpected failure")
        if row.phase is not None and not broken:
            return UpstreamTimeout(
                row.phase, self._endpoint.timeouts.connect, endpoint=self._endpoint.id
            )
        detail = self.redact(str(exc))
        return self.error(row.kind, f"{row.what}: {detail}" if detail else row.what, broken=broken)

    def error(self, kind: ErrorKind, message: str, *, broken: bool = False) -> UpstreamError:
        """An `UpstreamError` (or `StreamBroken`) attributed to this endpoint."""
        cls = StreamBroken if broken else UpstreamError
        return cls(kind, message, endpoint=self._endpoint.id)

    def redact(self, text: str) -> str:
        """`text` without the API key, should an upstream echo it back, nor anything
        shaped like a credential (see `scrub_secrets`)."""
        return scrub_secrets(text, self._endpoint.api_key)

    async def probe(
        self,
        mode: str,
        url: str,
        headers: Mapping[str, str],
        within: float,
        complete_one_token: Callable[[], Awaitable[object]],
    ) -> None:
        """A health probe: "http" GETs `url` (2xx is healthy), "completion" awaits
        `complete_one_token`, "off" does nothing. Either way bounded by `within` seconds."""
        if mode == "off":
            return
        if mode not in ("http", "completion"):
            raise ValueError(f"unknown probe mode {mode!r}")
        try:
            async with asyncio.timeout(within) as bound:
                if mode == "completion":
                    await complete_one_token()
                    return
                resp = await self.send("GET", url, headers=headers, wait=within, phase="total")
                try:
                    await read_bounded(resp.content, ERROR_BODY_LIMIT)
                except _TRANSPORT_ERRORS as exc:
                    raise self.translate(exc) from exc
                finally:
                    finish_response(resp)
        except TimeoutError as exc:
            if not bound.expired():
                raise self.translate(exc) from exc
            raise UpstreamTimeout("total", within, endpoint=self._endpoint.id) from exc
