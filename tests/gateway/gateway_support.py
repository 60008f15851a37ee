"""Processes for the gateway tests: the simulated fleet (`python -m bastion.testing`)
and `bastion serve`, each a real subprocess on loopback, and the config joining them.

Secrets are random per session and reach the server only through its environment
(`${...}` in the config), so a test can look for them in the server's log.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import secrets
import select
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import yaml

BIN = Path(sys.executable).parent
START_TIMEOUT = 20.0
STOP_TIMEOUT = 10.0
DRAIN_TIMEOUT = 5.0
MAX_BODY = 64 * 1024

QUESTION = [{"role": "user", "content": "Tell me about the fox."}]


@dataclass(frozen=True)
class Keys:
    """The session's secrets: the upstream api_key and the gateway's API keys."""

    upstream: str = field(default_factory=lambda: f"up-{secrets.token_hex(12)}")
    admin: str = field(default_factory=lambda: f"admin-{secrets.token_hex(12)}")
    app: str = field(default_factory=lambda: f"app-{secrets.token_hex(12)}")
    other: str = field(default_factory=lambda: f"other-{secrets.token_hex(12)}")

    def env(self) -> dict[str, str]:
        return {
            "BASTION_TEST_KEY": self.upstream,
            "BASTION_ADMIN_KEY": self.admin,
            "BASTION_APP_KEY": self.app,
            "BASTION_OTHER_KEY": self.other,
        }

    def values(self) -> list[str]:
        return list(self.env().values())


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def wait_for(predicate: Callable[[], bool], timeout: float = 3.0) -> bool:
    """Poll `predicate` until it holds (True) or `timeout` seconds pass (False)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.02)
    return False


def _stop(proc: subprocess.Popen[Any], timeout: float = STOP_TIMEOUT) -> int:
    """SIGTERM, then wait (bounded); SIGKILL what does not go."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
    try:
        return proc.wait(timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        return proc.wait(timeout)


# --- the fleet ---------------------------------------------------------------------------


class FleetProcess:
    """`python -m bastion.testing` in its own process, scripted over its control routes;
    `flags` go to its command line (`--text`, `--instruct`, ...)."""

    def __init__(
        self, names: tuple[str, ...] = ("primary", "secondary"), flags: tuple[str, ...] = ()
    ) -> None:
        args = [sys.executable, "-m", "bastion.testing", *flags]
        for name in names:
            args += ["--upstream", f"{name}=0"]
        self.proc = subprocess.Popen(
            args, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True
        )
        assert self.proc.stdout is not None
        ready, _, _ = select.select([self.proc.stdout], [], [], START_TIMEOUT)
        line = self.proc.stdout.readline() if ready else ""
        if not line:
            _stop(self.proc)
            raise RuntimeError("the fleet did not start")
        self.urls: dict[str, str] = json.loads(line)
        self.http = httpx.Client(timeout=5.0)

    def control(self, name: str, method: str, route: str, body: Any = None) -> Any:
        root = self.urls[name].removesuffix("/v1")
        response = self.http.request(method, f"{root}/_fleet/{route}", json=body)
        response.raise_for_status()
        return response.json()

    def set_default(self, name: str, fault: dict[str, Any]) -> None:
        self.control(name, "PUT", "default", fault)

    def script(self, name: str, *faults: dict[str, Any]) -> None:
        self.control(name, "POST", "script", list(faults))

    def attempts(self, name: str) -> list[dict[str, Any]]:
        attempts: list[dict[str, Any]] = self.control(name, "GET", "attempts")["attempts"]
        return attempts

    def outcomes(self, name: str) -> list[str]:
        return [a["outcome"] for a in self.attempts(name)]

    def reset(self) -> None:
        for name in self.urls:
            self.control(name, "POST", "heal")
            self.control(name, "DELETE", "attempts")

    def close(self) -> None:
        self.http.close()
        _stop(self.proc)


# --- the gateway -------------------------------------------------------------------------


def gateway_config(fleet: FleetProcess, **sections: Any) -> dict[str, Any]:
    """A config for the fleet: `chat` is primary → secondary. Secrets are `${...}`
    references; sections given replace the defaults (`server` is merged)."""
    config: dict[str, Any] = {
        "endpoints": [
            {
                "id": name,
                "provider": "openai",
                "model": f"model-{name}",
                "base_url": url,
                "api_key": "${BASTION_TEST_KEY}",
                "health": False,
            }
            for name, url in fleet.urls.items()
        ],
        "models": {"chat": {"targets": ["primary", "secondary"]}},
        "health_checks": False,
        # Out of reach, so one test's faults do not take an endpoint out for the next.
        "breaker": {"consecutive_failures": 10_000, "min_calls": 10_000},
        "outlier": {"consecutive_errors": 10_000},
        "retry": {
            "unavailable": {"base": "10ms", "max": "20ms"},
            "server_error": {"base": "10ms", "max": "20ms"},
        },
        "auth": {
            "keys": [
                {"key": "${BASTION_ADMIN_KEY}", "name": "ops", "admin": True},
                {"key": "${BASTION_APP_KEY}", "name": "app", "models": ["chat"]},
                {"key": "${BASTION_OTHER_KEY}", "name": "other", "models": ["primary"]},
            ]
        },
    }
    server = {"max_body": MAX_BODY, "drain_timeout": DRAIN_TIMEOUT, **sections.pop("server", {})}
    config.update(sections, server=server)
    return config


AGENT = "helper"


def agent_sections(store: Path) -> dict[str, Any]:
    """The config sections for one agent, `helper`, on the `chat` group, with its
    memory (which it does not use) in a SQLite file at `store`."""
    return {
        "agents": {AGENT: {"instructions": "Answer briefly.", "model": "chat", "memory": False}},
        "memory": {"store": f"sqlite:///{store}"},
    }


_LISTENING = re.compile(r"bastion listening on (http://\S+)")


class GatewayProcess:
    """`bastion serve` in its own process; stdout and stderr go to `log_path`."""

    def __init__(
        self,
        config: dict[str, Any],
        directory: Path,
        keys: Keys,
        *,
        port: int = 0,
        workers: int = 1,
    ) -> None:
        self.config_path = directory / "bastion.yaml"
        self.log_path = directory / "server.log"
        self.write_config(config)
        env = {**os.environ, **keys.env(), "PYTHONUNBUFFERED": "1"}
        args = [str(BIN / "bastion"), "serve", "-c", str(self.config_path), "--port", str(port)]
        if workers != 1:
            args += ["--workers", str(workers)]
        self._log = self.log_path.open("wb")
        self.proc = subprocess.Popen(args, stdout=self._log, stderr=subprocess.STDOUT, env=env)
        self.url = self._wait_until_ready(port)

    def write_config(self, config: dict[str, Any]) -> None:
        self.config_path.write_text(yaml.safe_dump(config, sort_keys=False))

    def _wait_until_ready(self, port: int) -> str:
        deadline = time.monotonic() + START_TIMEOUT
        url = f"http://127.0.0.1:{port}" if port else None
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"bastion serve exited {self.proc.returncode}:\n{self.logs()}")
            if url is None and (found := _LISTENING.search(self.logs())):
                url = found.group(1)
            if url is not None:
                with contextlib.suppress(httpx.TransportError):
                    if httpx.get(f"{url}/api/v1/health", timeout=1.0).status_code == 200:
                        return url
            time.sleep(0.05)
        self.stop()
        raise RuntimeError(f"bastion serve was not ready in {START_TIMEOUT}s:\n{self.logs()}")

    @property
    def port(self) -> int:
        return int(self.url.rsplit(":", 1)[1])

    def logs(self) -> str:
        return self.log_path.read_text(errors="replace")

    def signal(self, sig: signal.Signals) -> None:
        self.proc.send_signal(sig)

    def stop(self, timeout: float = STOP_TIMEOUT) -> int:
        code = _stop(self.proc, timeout)
        self._log.close()
        return code


MakeGateway = Callable[..., GatewayProcess]
"""The `make_gateway` fixture: start a gateway of the test's own (config, port, workers)."""
