"""What the gateway benchmark points load at: the targets, their configs, the fleet's
control routes and the requests sent.

Bastion and LiteLLM get the same upstreams under the same names:

- `bench`: one healthy endpoint on the primary upstream;
- `dead` (the primary upstream asked for model `dead`, whose every connection it resets
  before answering: the fleet's `reset` fault) before `backup` — Bastion's group `down`,
  LiteLLM's `dead` with a fallback to `backup`. A reset rather than a refused
  connection so that the fleet logs every attempt, for both gateways alike;
- `flaky` (the primary upstream asked for model `flaky`, which is where the scripted
  500s go) before `backup` — Bastion's group `mixed`, LiteLLM's `flaky` + fallback.

Breakers, retries, budgets and cooldowns are each gateway's defaults.
"""

from __future__ import annotations

import contextlib
import json
import random
import sys
import urllib.request
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench import peers, procs
from bench._common import FleetProcess
from bench.loadgen import AttemptsOf, no_attempts

BODY_TEXT = "Say something short."
ANSWER = "The quick brown fox"  # the start of the fake's default answer
# The 30 % mix: 10,000 is the fake's bound on queued faults.
MIX_LENGTH, MIX_ERRORS, MIX_SEED = 10_000, 3_000, 7


@dataclass(frozen=True, slots=True)
class Target:
    name: str
    root: str  # http://host:port
    url: str  # where chat completions are POSTed
    pid: int  # the process whose CPU and memory are charged to the target
    attempts_of: AttemptsOf = no_attempts

    def usage(self) -> procs.Usage | None:
        return procs.usage(self.pid)


def http_target(name: str, root: str, pid: int, attempts_of: AttemptsOf = no_attempts) -> Target:
    return Target(name, root, f"{root}/v1/chat/completions", pid, attempts_of)


def body(model: str = "bench", *, stream: bool = False) -> bytes:
    data: dict[str, Any] = {"model": model, "messages": [{"role": "user", "content": BODY_TEXT}]}
    if stream:
        data["stream"] = True
    return json.dumps(data).encode()


def check_answers(targets: Sequence[Target]) -> None:
    """One request per target, checked: a misconfigured target fails here, not as a
    fast row of errors in the tables."""
    for target in targets:
        request = urllib.request.Request(target.url, data=body(), method="POST")
        request.add_header("Content-Type", "application/json")
        with urllib.request.urlopen(request, timeout=30) as response:
            text = response.read().decode()
        if ANSWER not in text:
            raise RuntimeError(f"{target.name} answered {text[:200]!r}")


# --- the fleet ----------------------------------------------------------------------------


def control(base_url: str, method: str, route: str, payload: Any = None) -> Any:
    """One `/_fleet/*` call to the upstream at `base_url` (…/v1)."""
    root = base_url.removesuffix("/v1")
    data = None if payload is None else json.dumps(payload).encode()
    request = urllib.request.Request(f"{root}/_fleet/{route}", data=data, method=method)
    request.add_header("Content-Type", "application/json")
    with urllib.request.urlopen(request, timeout=30) as response:
        return json.loads(response.read())


def break_dead(fleet: FleetProcess) -> None:
    """Model `dead` on the primary upstream: every connection reset, from now on."""
    control(fleet.urls["primary"], "PUT", "default", {"fault": {"kind": "reset"}, "model": "dead"})


def set_latency(fleet: FleetProcess, latency_ms: int) -> None:
    """Every upstream answers after `latency_ms` from now on."""
    for url in fleet.urls.values():
        control(url, "PUT", "default", {"kind": "ok", "latency": latency_ms / 1000})


def mixed_script(latency_ms: int) -> list[dict[str, Any]]:
    """MIX_LENGTH faults, MIX_ERRORS of them 500s, in a seeded random order: runs of
    failures happen, as they do in life, and every run sees the same ones. The oks
    carry the latency themselves: a queued fault replaces the standing one."""
    ok = {"kind": "ok", "latency": latency_ms / 1000}
    faults = [{"kind": "status", "code": 500}] * MIX_ERRORS + [ok] * (MIX_LENGTH - MIX_ERRORS)
    random.Random(MIX_SEED).shuffle(faults)
    return faults


@contextlib.contextmanager
def bare_proxy_server(upstream: str, core: int | None) -> Iterator[procs.Server]:
    """`python -m bench.bare_proxy` in front of `upstream`, on `core`, healthy."""
    port = procs.free_port()
    args = [sys.executable, "-m", "bench.bare_proxy", "--upstream", upstream]
    args += ["--port", str(port)]
    url = f"http://127.0.0.1:{port}"
    with procs.start_server(
        "bare proxy", args, url=url, health_path="/health", core=core
    ) as server:
        yield server


# --- Bastion ------------------------------------------------------------------------------


def bastion_config(urls: Mapping[str, str]) -> dict[str, Any]:
    def endpoint(name: str, model: str, url: str) -> dict[str, Any]:
        # A config file holds no literal secret: the fleet takes any key.
        key = "${BENCH_UPSTREAM_KEY:-x}"
        return {"id": name, "provider": "openai", "model": model, "base_url": url, "api_key": key}

    return {
        "endpoints": [
            endpoint("bench", "bench", urls["primary"]),
            endpoint("dead", "dead", urls["primary"]),
            endpoint("flaky", "flaky", urls["primary"]),
            endpoint("backup", "bench", urls["backup"]),
        ],
        "models": {
            "down": {"targets": ["dead", "backup"]},
            "mixed": {"targets": ["flaky", "backup"]},
        },
        # Off: probes would land in some cells and not others.
        "health_checks": False,
        "server": {"host": "127.0.0.1"},
    }


@contextlib.contextmanager
def bastion_server(config: Path, core: int | None) -> Iterator[procs.Server]:
    """`bastion serve -c FILE --port P` on `core`, healthy."""
    port = procs.free_port()
    script = Path(sys.executable).parent / "bastion"
    command = [str(script)] if script.exists() else [sys.executable, "-m", "bastion.cli"]
    args = [*command, "serve", "-c", str(config), "--port", str(port)]
    url = f"http://127.0.0.1:{port}"
    with procs.start_server(
        "bastion", args, url=url, health_path="/api/v1/health", core=core
    ) as server:
        yield server


def bastion_attempts(headers: Mapping[str, str]) -> int | None:
    value = headers.get("x-bastion-attempts")
    return int(value) if value else None


def breaker_of(root: str, endpoint: str) -> str:
    """The breaker state of `endpoint`, from Bastion's status route."""
    with urllib.request.urlopen(f"{root}/api/v1/status", timeout=5) as response:
        status = json.loads(response.read())
    found = [e for e in status.get("endpoints", []) if e.get("id") == endpoint]
    return str(found[0]["breaker"]) if found else "?"


# --- LiteLLM ------------------------------------------------------------------------------


def litellm_config(urls: Mapping[str, str]) -> dict[str, Any]:
    models = {
        "bench": ("bench", urls["primary"]),
        "dead": ("dead", urls["primary"]),
        "flaky": ("flaky", urls["primary"]),
        "backup": ("bench", urls["backup"]),
    }
    return peers.litellm_config(models, {"dead": "backup", "flaky": "backup"})
