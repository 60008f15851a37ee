"""The thinnest pass-through proxy aiohttp allows: the floor under any Python gateway.

    python -m bench.bare_proxy --upstream http://127.0.0.1:PORT/v1 --port P

`POST /v1/chat/completions` reads the body, POSTs it upstream through one shared
`ClientSession` and returns the upstream's status and bytes; an event stream is copied
chunk by chunk as it arrives. Nothing is parsed, routed, retried or counted. What a
gateway costs beyond this is the price of what it does; what this costs is the price of
being a Python aiohttp process in the path at all. `GET /health` answers 200.
"""

from __future__ import annotations

import argparse
import asyncio
import signal
from collections.abc import AsyncIterator, Sequence

import aiohttp
from aiohttp import web

# Bastion's own pool bound (bastion/models/http.py), so both proxies may open as many
# upstream connections as each other.
POOL_LIMIT = 100
SESSION: web.AppKey[aiohttp.ClientSession] = web.AppKey("session", aiohttp.ClientSession)
UPSTREAM: web.AppKey[str] = web.AppKey("upstream", str)


async def forward(request: web.Request) -> web.StreamResponse:
    session = request.app[SESSION]
    body = await request.read()
    headers = {"Content-Type": "application/json"}
    async with session.post(request.app[UPSTREAM], data=body, headers=headers) as upstream:
        kind = upstream.headers.get("Content-Type", "application/json")
        if not kind.startswith("text/event-stream"):
            return web.Response(
                body=await upstream.read(), status=upstream.status, headers={"Content-Type": kind}
            )
        response = web.StreamResponse(
            status=upstream.status, headers={"Content-Type": kind, "Cache-Control": "no-cache"}
        )
        await response.prepare(request)
        async for chunk in upstream.content.iter_any():
            await response.write(chunk)
        await response.write_eof()
        return response


async def health(request: web.Request) -> web.Response:
    return web.Response(text="ok")


def create_app(upstream_base: str) -> web.Application:
    app = web.Application()
    app[UPSTREAM] = upstream_base.rstrip("/") + "/chat/completions"

    async def session_context(app: web.Application) -> AsyncIterator[None]:
        connector = aiohttp.TCPConnector(limit=POOL_LIMIT)
        async with aiohttp.ClientSession(connector=connector) as session:
            app[SESSION] = session
            yield

    app.cleanup_ctx.append(session_context)
    app.router.add_post("/v1/chat/completions", forward)
    app.router.add_get("/health", health)
    return app


async def serve(upstream: str, host: str, port: int) -> None:
    runner = web.AppRunner(create_app(upstream), access_log=None, handler_cancellation=True)
    await runner.setup()
    await web.TCPSite(runner, host, port).start()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    print(f"bare proxy listening on http://{host}:{port}", flush=True)
    await stop.wait()
    await runner.cleanup()


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.bare_proxy", description=__doc__)
    parser.add_argument("--upstream", required=True, help="the upstream's base URL (…/v1)")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--loop", choices=("asyncio", "uvloop"), default="asyncio")
    args = parser.parse_args(argv)
    factory = None
    if args.loop == "uvloop":
        import uvloop

        factory = uvloop.new_event_loop
    with asyncio.Runner(loop_factory=factory) as runner:
        runner.run(serve(args.upstream, args.host, args.port))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
