"""Where Bastion's CPU per request goes, layer by layer, over HTTP.

    python -m bench.layers [--rounds R] [--seconds S]

One server process per rung of a ladder, each adding one layer of Bastion to the one
below, all in front of the same fake upstream at 0 ms and driven by wrk at concurrency
16 (the gateway's core saturated, so CPU per request is the whole story):

- raw: read the body, POST it upstream, return the bytes (bench/bare_proxy.py's path);
- model: + `parse_chat`, `OpenAIChatModel.complete` (over Bastion's own HTTP/1.1 pool,
  not aiohttp's client), `completion_body` (the wire formats);
- router: + a one-endpoint `Router` (plan, breaker, budget, timeouts, attempt records);
- router + metrics: + the Prometheus `Metrics` hook and `observe_request`;
- app: the whole gateway app (`create_app(Gateway(config))`, what `bastion serve` runs);
- app + gc.freeze: the same, with the objects alive at startup frozen out of the
  collector (`gc.freeze()`), as `bastion serve` does once it listens;
- serve: + `bastion serve`'s connection handler (`server.protocol.make_runner`: the
  deadline on request heads) in place of aiohttp's own.

Rounds rotate the order; a cell reports the median over rounds. Processes are pinned
as in `bench.gateway` (servers on core 0, wrk and the fake on core 1).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import signal
import statistics
import sys
from collections.abc import Sequence

import aiohttp
from aiohttp import web

from bench import loadgen, procs
from bench._common import fleet_processes, machine, pinned, plan_pinning

LAYERS = ("raw", "model", "router", "router + metrics", "app", "app + gc.freeze", "serve")
CONCURRENCY = 16


async def serve(layer: str, upstream: str, port: int) -> None:
    # Imported here: the driver does not need Bastion's server modules.
    from bastion import Endpoint, Router, RouterOptions
    from bastion.config import load_config
    from bastion.models.openai import OpenAIChatModel
    from bastion.observability.metrics import Metrics
    from bastion.server.app import create_app
    from bastion.server.gateway import Gateway
    from bastion.server.openai.codec import completion_body, parse_chat
    from bastion.server.protocol import make_runner

    endpoint = Endpoint(
        id="bench", provider="openai", model="bench", base_url=upstream, api_key="x"
    )
    url = upstream + "/chat/completions"
    metrics = Metrics()
    hooks = [metrics] if layer == "router + metrics" else []
    options = RouterOptions(health_checks=False)
    async with contextlib.AsyncExitStack() as stack:
        session = await stack.enter_async_context(aiohttp.ClientSession())
        model = OpenAIChatModel(endpoint)
        stack.push_async_callback(model.aclose)
        router = await stack.enter_async_context(
            Router([endpoint], options=options, default_model="bench", hooks=hooks)
        )

        async def raw(request: web.Request) -> web.Response:
            headers = {"Content-Type": "application/json"}
            async with session.post(url, data=await request.read(), headers=headers) as resp:
                return web.Response(body=await resp.read(), content_type="application/json")

        async def via_model(request: web.Request) -> web.Response:
            parsed = parse_chat(await request.read())
            answer = await model.complete(parsed.request)
            return web.Response(body=completion_body(answer, "1"), content_type="application/json")

        async def via_router(request: web.Request) -> web.Response:
            parsed = parse_chat(await request.read())
            answer = await router.complete(parsed.request, model=parsed.model)
            if hooks:
                metrics.observe_request(parsed.model, "ok", False, 0.001, 0.0001)
            return web.Response(body=completion_body(answer, "1"), content_type="application/json")

        gateway = None
        if layer.startswith("app") or layer == "serve":
            config = {"endpoints": [endpoint_config(upstream)], "health_checks": False}
            gateway = Gateway(load_config(config))
            app = create_app(gateway)
        else:
            handler = {"raw": raw, "model": via_model}.get(layer, via_router)
            app = web.Application()
            app.router.add_post("/v1/chat/completions", handler)
        app.router.add_get("/_layer/health", lambda _: _ok())
        if gateway is not None and layer == "serve":
            runner = make_runner(app, gateway.config.server)
        else:
            runner = web.AppRunner(app, access_log=None, handler_cancellation=True)
        await runner.setup()
        stack.push_async_callback(runner.cleanup)
        await web.TCPSite(runner, "127.0.0.1", port).start()
        if layer.endswith("gc.freeze") or layer == "serve":
            gc.collect()
            gc.freeze()
        stop = asyncio.Event()
        asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
        await stop.wait()


async def _ok() -> web.Response:
    return web.Response(text="ok")


def endpoint_config(upstream: str) -> dict[str, str]:
    """The app's one endpoint: the `Endpoint` of the other rungs, as YAML would say it."""
    return {
        "id": "bench",
        "provider": "openai",
        "model": "bench",
        "base_url": upstream,
        "api_key": "x",
    }


Rows = dict[str, list[tuple[float, loadgen.Result]]]  # layer -> (CPU µs/req, wrk) per round


def measure(rounds: int, seconds: int) -> Rows:
    pinning = plan_pinning()
    server_core = pinning.bench_core if pinning else None
    load_core = pinning.fleet_core if pinning else None
    out: Rows = {}
    with (
        pinned(load_core),
        fleet_processes(("primary",), core=load_core) as fleet,
        contextlib.ExitStack() as stack,
    ):
        upstream = fleet.urls["primary"]
        servers = []
        for layer in LAYERS:
            port = procs.free_port()
            args = [sys.executable, "-m", "bench.layers", "--serve", layer]
            args += ["--upstream", upstream, "--port", str(port)]
            url = f"http://127.0.0.1:{port}"
            servers.append(
                stack.enter_context(
                    procs.start_server(
                        layer, args, url=url, health_path="/_layer/health", core=server_core
                    )
                )
            )
        body = b'{"model":"bench","messages":[{"role":"user","content":"Say something short."}]}'
        for server in servers:  # warm-up: connections, caches
            loadgen.run_wrk(server.url + "/v1/chat/completions", body, CONCURRENCY, 1)
        for r in range(rounds):
            shift = r % len(servers)
            for server in [*servers[shift:], *servers[:shift]]:
                before = server.usage()
                result = loadgen.run_wrk(
                    server.url + "/v1/chat/completions", body, CONCURRENCY, seconds
                )
                after = server.usage()
                cpu = float("nan")
                if before and after and result.requests:
                    cpu = (after.cpu_seconds - before.cpu_seconds) / result.requests * 1e6
                out.setdefault(server.name, []).append((cpu, result))
            print(f"round {r + 1}/{rounds} done", file=sys.stderr, flush=True)
    return out


def table(results: Rows) -> str:
    lines = [
        "| layer | CPU µs/req | added by the layer | RPS | p99 ms |",
        "|---|---:|---:|---:|---:|",
    ]
    previous = None
    for layer in LAYERS:
        rows = results[layer]
        cpu = statistics.median(c for c, _ in rows)
        rps = statistics.median(r.rps for _, r in rows)
        p99 = statistics.median(r.p99_ms for _, r in rows)
        added = "—" if previous is None else f"{cpu - previous:+.0f}"
        lines.append(f"| {layer} | {cpu:.0f} | {added} | {rps:,.0f} | {p99:.1f} |")
        previous = cpu
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.layers", description=__doc__)
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    parser.add_argument("--rounds", type=int, default=3, choices=range(1, 11), metavar="1-10")
    parser.add_argument("--seconds", type=int, default=3, choices=range(1, 61), metavar="1-60")
    parser.add_argument("--serve", choices=LAYERS, help=argparse.SUPPRESS)
    parser.add_argument("--upstream", help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.serve:
        asyncio.run(serve(args.serve, args.upstream, args.port))
        return 0
    if loadgen.wrk_path() is None:
        print(loadgen.WRK_HINT, file=sys.stderr)
        return 2
    for line in machine():
        print(line)
    print(f"wrk at concurrency {CONCURRENCY}, upstream 0 ms, {args.rounds} × {args.seconds} s\n")
    print(table(measure(args.rounds, args.seconds)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
