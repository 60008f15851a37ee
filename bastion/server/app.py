"""The app factory: routes, middleware, lifecycle.

The server is aiohttp's; upstream calls go through Bastion's own HTTP/1.1 pool
(`bastion.models.h1`). Measured on this project's benchmarks (docs/benchmarks.md): the
httpx-based `openai.AsyncOpenAI` costs more than twice the CPU per call of aiohttp's
client at concurrency 64; aiohttp's client was in turn a quarter of the gateway's CPU
per request, and the h1 pool costs less than half of what it did. Starlette on uvicorn is a fine
server, but would add an ASGI translation layer per request for nothing we need.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import structlog
from aiohttp import web
from aiohttp.web_protocol import RequestPayloadError

from bastion.server.agents.api import add_agent_routes
from bastion.server.agents.threads import add_thread_routes
from bastion.server.agents.ws import add_agent_socket_routes
from bastion.server.auth import authorize
from bastion.server.control.api import add_control_routes
from bastion.server.errors import ApiError
from bastion.server.gateway import Gateway
from bastion.server.keys import GATEWAY
from bastion.server.openai.api import add_openai_routes
from bastion.server.openapi import add_openapi_route

_log = structlog.get_logger("bastion.server")

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

_HTTP_CODES = {
    404: "not_found",
    405: "method_not_allowed",
    413: "request_too_large",
    415: "unsupported_media_type",
}


@web.middleware
async def gateway_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Authenticates the request (`authorize`) and gives every error OpenAI's shape;
    nothing internal leaks into a body. One middleware for both: each layer of
    aiohttp's middleware chain costs a wrapper call per request."""
    try:
        return await authorize(request, handler)
    except ApiError as exc:
        return exc.response()
    except RequestPayloadError:
        # aiohttp's reason quotes the request; the body is the client's fault, not ours.
        _log.info("request body unreadable", path=request.path, method=request.method)
        return ApiError(
            400,
            "the body could not be read: its Content-Encoding, Content-Length or chunked "
            "encoding does not match what was sent",
            param="body",
            code="invalid_body",
        ).response()
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        code = _HTTP_CODES.get(exc.status, "http_error")
        message = exc.reason
        if exc.status == 413:
            limit = request.app[GATEWAY].config.server.max_body
            message = f"the body is larger than the limit of {limit} bytes"
        return ApiError(exc.status, message, code=code).response(
            {k: v for k, v in exc.headers.items() if k.lower() == "allow"}
        )
    except Exception:
        _log.exception("unhandled error", path=request.path, method=request.method)
        return ApiError(
            500, "internal error", type="server_error", code="internal_error"
        ).response()


def create_app(gateway: Gateway) -> web.Application:
    # Outermost, so that the server span sees the status the error handling sets.
    tracing = () if gateway.tracing is None else (gateway.tracing.middleware,)
    app = web.Application(
        client_max_size=gateway.config.server.max_body,
        middlewares=[*tracing, gateway_middleware],
    )
    app[GATEWAY] = gateway
    add_openai_routes(app)
    add_control_routes(app)
    add_agent_routes(app)
    add_agent_socket_routes(app)
    add_thread_routes(app)
    add_openapi_route(app)

    async def start(_: web.Application) -> None:
        await gateway.start()

    async def stop(_: web.Application) -> None:
        await gateway.close()

    app.on_startup.append(start)
    app.on_cleanup.append(stop)
    return app
