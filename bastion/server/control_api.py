"""The control plane. (Minimal; being completed.)"""

from __future__ import annotations

import orjson
from aiohttp import web

from bastion.server.keys import GATEWAY


async def health(request: web.Request) -> web.Response:
    gateway = request.app[GATEWAY]
    body = {"live": True, "ready": gateway.ready}
    return web.Response(
        body=orjson.dumps(body),
        status=200 if gateway.ready else 503,
        content_type="application/json",
    )


def add_control_routes(app: web.Application) -> None:
    app.router.add_get("/api/v1/health", health)
