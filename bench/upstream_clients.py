"""Which HTTP client should carry Bastion's upstream calls: the gateway end to end, one
`bastion serve` per client, beside the bare aiohttp proxy.

    python -m bench.upstream_clients [--rounds R] [--seconds S] [--targets NAME,...]

Targets (each its own process on core 0; wrk and the fake upstream on core 1, as in
`bench.gateway`): `bastion/<client>/<loop>` runs `bastion serve` with the models' own
transport made by `<client>` (`bench/client_adapters.py`: h1, aiohttp, pyreqwest,
curl-cffi) on the `<loop>` event loop (asyncio or uvloop); `bare/<loop>` is
`bench/bare_proxy.py` on that loop; `before/DIR` is `bastion serve` from the checkout
in DIR (its own code, asyncio), for a before/after in one run; `serve/LOOP/DIR` the
same with `--loop LOOP`. The default set: the
four clients on asyncio and the bare proxy.

For each upstream latency (0 ms: the gateway's core saturates; 50 ms: a model-like
wait) wrk POSTs a chat request at concurrency 64 (`--concurrency 16,64` for more).
Every target is warmed up, then run `--rounds` times for `--seconds`, the order
rotating; a cell reports the median round (RPS, CPU µs per request from schedstat,
p99) and, beside it, the ratio to the first target's RPS *within the same round*,
median over rounds: the VM is shared, and a ratio of two runs moments apart is
steadier than either number.
"""

from __future__ import annotations

import argparse
import contextlib
import statistics
import sys
import tempfile
from collections.abc import Iterator, Sequence
from pathlib import Path

import yaml

from bench import loadgen, procs
from bench._common import fleet_processes, machine, pinned, plan_pinning
from bench.gateway_cells import cpu_us, progress
from bench.gateway_targets import Target, body, check_answers, http_target, set_latency

CONCURRENCY = 64
LATENCIES_MS = (0, 50)
DEFAULT_TARGETS = (
    "bastion/h1/asyncio",
    "bastion/aiohttp/asyncio",
    "bastion/pyreqwest/asyncio",
    "bastion/curl-cffi/asyncio",
    "bare/asyncio",
)


def config(upstream: str) -> dict[str, object]:
    endpoint = {"id": "bench", "provider": "openai", "model": "bench", "base_url": upstream}
    return {
        # A config file holds no literal secret: the upstream takes any key.
        "endpoints": [{**endpoint, "api_key": "${BENCH_UPSTREAM_KEY:-x}"}],
        "health_checks": False,
        "server": {"host": "127.0.0.1"},
    }


@contextlib.contextmanager
def start(name: str, upstream: str, directory: Path, core: int | None) -> Iterator[Target]:
    kind, _, rest = name.partition("/")
    port = procs.free_port()
    env: dict[str, str] = {}
    url = f"http://127.0.0.1:{port}"
    if kind == "bare":
        args = [sys.executable, "-m", "bench.bare_proxy", "--upstream", upstream]
        args += ["--port", str(port), "--loop", rest]
        health = "/health"
    elif kind in ("before", "serve"):
        # `bastion serve` from the checkout in DIR, its own code: `before/DIR` (asyncio,
        # a checkout from before `--loop` existed) or `serve/LOOP/DIR`.
        loop, directory_arg = ("", rest) if kind == "before" else rest.split("/", 1)
        directory_arg = directory_arg if kind == "before" else "/" + directory_arg
        path = directory / "bastion.yaml"
        path.write_text(yaml.safe_dump(config(upstream)))
        args = [sys.executable, "-m", "bastion.cli", "serve", "-c", str(path), "--port", str(port)]
        args += ["--loop", loop] if loop else []
        health = "/api/v1/health"
        env = {"PYTHONPATH": directory_arg}
    elif kind == "bastion":
        client, _, loop = rest.partition("/")
        path = directory / "bastion.yaml"
        path.write_text(yaml.safe_dump(config(upstream)))
        args = [sys.executable, "-m", "bench.client_adapters", "--client", client]
        args += ["serve", "-c", str(path), "--port", str(port), "--loop", loop or "asyncio"]
        health = "/api/v1/health"
    else:
        raise SystemExit(f"unknown target {name!r}")
    label = {"serve": f"serve/{rest.split('/', 1)[0]}"}.get(kind, name)
    with procs.start_server(label, args, url=url, health_path=health, core=core, env=env) as server:
        yield http_target(label, url, server.pid)


def check_streams(targets: Sequence[Target]) -> None:
    """One stream per target, read to its end: an adapter that breaks streams shows here."""
    import urllib.request

    for target in targets:
        request = urllib.request.Request(target.url, data=body(stream=True), method="POST")
        request.add_header("Content-Type", "application/json")
        with urllib.request.urlopen(request, timeout=30) as response:
            text = response.read().decode()
        if "[DONE]" not in text:
            raise RuntimeError(f"{target.name} streamed {text[:200]!r}")


def measure(
    targets: Sequence[Target], rounds: int, seconds: int, concurrency: int = CONCURRENCY
) -> list[tuple[str, float, float | None, float, float]]:
    """Per target: median RPS, median CPU µs/req, median p99 ms, median ratio to the
    first target's RPS in the same round."""
    for target in targets:
        loadgen.run_wrk(target.url, body(), concurrency, 1)
    runs: dict[str, list[tuple[float, float | None, float]]] = {t.name: [] for t in targets}
    ratios: dict[str, list[float]] = {t.name: [] for t in targets}
    for r in range(rounds):
        shift = r % len(targets)
        this_round: dict[str, float] = {}
        for target in [*targets[shift:], *targets[:shift]]:
            before = target.usage()
            result = loadgen.run_wrk(target.url, body(), concurrency, seconds)
            cpu = cpu_us(before, target.usage(), result.requests)
            runs[target.name].append((result.rps, cpu, result.p99_ms))
            this_round[target.name] = result.rps
        first = this_round[targets[0].name]
        for name, rps in this_round.items():
            ratios[name].append(rps / first if first else 0.0)
    out = []
    for target in targets:
        rows = runs[target.name]
        cpus = [c for _, c, _ in rows if c is not None]
        out.append(
            (
                target.name,
                statistics.median(r for r, _, _ in rows),
                statistics.median(cpus) if cpus else None,
                statistics.median(p for _, _, p in rows),
                statistics.median(ratios[target.name]),
            )
        )
    return out


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.upstream_clients", description=__doc__)
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    parser.add_argument("--rounds", type=int, default=4)
    parser.add_argument("--seconds", type=int, default=3)
    parser.add_argument("--targets", default=",".join(DEFAULT_TARGETS))
    parser.add_argument("--latencies", default=",".join(map(str, LATENCIES_MS)))
    parser.add_argument("--concurrency", default=str(CONCURRENCY), help="e.g. 16,64")
    args = parser.parse_args(argv)
    if loadgen.wrk_path() is None:
        print(loadgen.WRK_HINT, file=sys.stderr)
        return 2
    names = [n.strip() for n in args.targets.split(",") if n.strip()]
    latencies = [int(x) for x in args.latencies.split(",")]
    concurrencies = [int(x) for x in args.concurrency.split(",")]
    for line in machine(("aiohttp", "httptools", "pyreqwest", "curl_cffi", "uvloop")):
        print(line)
    pinning = plan_pinning()
    sut = pinning.bench_core if pinning else None
    load = pinning.fleet_core if pinning else None
    with (
        pinned(load),
        fleet_processes(("primary",), core=load) as fleet,
        tempfile.TemporaryDirectory(prefix="bench-clients-") as tmp,
        contextlib.ExitStack() as stack,
    ):
        upstream = fleet.urls["primary"]
        targets = []
        for i, name in enumerate(names):
            directory = Path(tmp) / str(i)
            directory.mkdir()
            targets.append(stack.enter_context(start(name, upstream, directory, sut)))
        check_answers(targets)
        check_streams(targets)
        print()
        print(f"wrk, {args.rounds} rounds of {args.seconds} s per cell, the median round")
        print()
        first = targets[0].name
        print(f"| upstream | conc. | target | RPS | CPU µs/req | p99 ms | RPS vs {first} |")
        print("|---:|---:|---|---:|---:|---:|---:|")
        for latency in latencies:
            set_latency(fleet, latency)
            for concurrency in concurrencies:
                progress(f"{latency} ms upstream, concurrency {concurrency}")
                rows = measure(targets, args.rounds, args.seconds, concurrency)
                for name, rps, cpu, p99, ratio in rows:
                    cpu_text = f"{cpu:.0f}" if cpu is not None else "?"
                    print(
                        f"| {latency} ms | {concurrency} | {name} | {rps:,.0f} | {cpu_text} | "
                        f"{p99:.1f} | {ratio:.2f} |",
                        flush=True,
                    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
