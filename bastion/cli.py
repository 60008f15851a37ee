"""`bastion serve | demo | check-config FILE | bench`."""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from collections.abc import Sequence
from pathlib import Path


def _check_config(path: str) -> int:
    from bastion.agents.configure import plan_agents
    from bastion.config import ConfigError, load_config
    from bastion.memory.check import check_store
    from bastion.routing.configure import load_router_config

    try:
        config = load_config(Path(path))
        parts = load_router_config(config)
        agents = plan_agents(config)  # imports each agent's tools, too
    except ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    # The store is opened only when an agent needs it, so only then is it checked.
    if agents:
        try:
            memory = asyncio.run(check_store(config.memory.store))
        except ValueError as exc:
            print(f"error: {path}: memory.store: {exc}", file=sys.stderr)
            return 1
    else:
        memory = "not checked: no agent uses it"
    print(
        f"{path}: ok — {len(parts.endpoints)} endpoint(s), "
        f"{len(parts.groups)} model group(s), {len(agents)} agent(s); memory.store: {memory}"
    )
    return 0


def _bench(calls: int) -> int:
    import importlib.util
    import runpy

    # The benchmarks live in the source tree's bench/, not in the installed package;
    # a console script does not have the working directory on sys.path.
    if os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())
    try:
        found = importlib.util.find_spec("bench.router_overhead") is not None
    except ModuleNotFoundError:
        found = False
    if not found:
        print("error: run `bastion bench` from a source checkout (bench/ not found)")
        return 1
    sys.argv = ["bench.router_overhead", "--calls", str(calls)]
    runpy.run_module("bench.router_overhead", run_name="__main__")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="bastion", description="Keeps AI applications answering when model providers fail."
    )
    commands = parser.add_subparsers(dest="command", required=True)
    demo = commands.add_parser("demo", help="offline demo: failover over a simulated fleet")
    demo.add_argument("--duration", type=float, default=24.0, help="seconds of traffic")
    demo.add_argument("--rate", type=float, default=40.0, help="requests per second")
    demo.add_argument("--plain", action="store_true", help="no live view, just the summary")
    serve = commands.add_parser("serve", help="run the OpenAI-compatible gateway")
    serve.add_argument("--config", "-c", required=True, help="the YAML config file")
    serve.add_argument("--host", default=None, help="overrides server.host")
    serve.add_argument("--port", type=int, default=None, help="overrides server.port")
    serve.add_argument(
        "--workers", type=int, default=1, help="worker processes on one port, supervised"
    )
    serve.add_argument(
        "--loop",
        choices=("auto", "asyncio", "uvloop"),  # runner.LOOPS, not imported: it is heavy
        default="auto",
        help="the event loop (default auto: uvloop when installed, `pip install 'bastion[fast]'`)",
    )
    check = commands.add_parser("check-config", help="validate a config file")
    check.add_argument("file")
    bench = commands.add_parser("bench", help="in-process benchmark of the Router's overhead")
    bench.add_argument("--calls", type=int, default=2000)
    args = parser.parse_args(argv)

    if args.command == "serve":
        from bastion.server.runner import serve as run_server

        return run_server(args.config, args.host, args.port, args.workers, loop=args.loop)
    if args.command == "check-config":
        return _check_config(args.file)
    if args.command == "demo":
        from bastion.demo.run import run_demo

        return asyncio.run(run_demo(duration=args.duration, rate=args.rate, live=not args.plain))
    if args.command == "bench":
        return _bench(args.calls)
    parser.error(f"unknown command {args.command}")
    return 2


if __name__ == "__main__":
    raise SystemExit(main())
