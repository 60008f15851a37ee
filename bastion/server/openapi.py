"""The OpenAPI document at /openapi.json. (Minimal; being completed.)"""

from __future__ import annotations

from aiohttp import web


async def openapi(request: web.Request) -> web.Response:
    return web.json_response(
        {"openapi": "3.1.0", "info": {"title": "Bastion", "version": "0.1.0"}, "paths": {}}
    )


def add_openapi_route(app: web.Application) -> None:
    app.router.add_get("/openapi.json", openapi)
