"""A config PUT is as far as an admin key reaches: it may not import code the operator
did not allow, nor read environment the operator's file does not use. Each probe is
refused, audited, and changes nothing."""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator
from typing import Any

import pytest
import yaml
from conftest import UNREFERENCED
from gateway_support import GatewayProcess, Keys, wait_for
from security_support import error_of, put_config, visible_state

# Callables that would run commands or code as the gateway's user if they were tools.
SHELLS = [
    "os:system",
    "subprocess:getoutput",
    "builtins:eval",
    "shutil:rmtree",
    "pty:spawn",
    "bastion.cli:main",
]


def _live_config(gateway: GatewayProcess) -> dict[str, Any]:
    config: dict[str, Any] = yaml.safe_load(gateway.config_path.read_text())
    return config


class Listener:
    """A TCP server that records whatever connects to it: the exfiltration target."""

    def __init__(self) -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(8)
        self.sock.settimeout(0.2)
        self.received = bytearray()
        self.connections = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.sock.getsockname()[1]}/v1"

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self.sock.accept()
            except TimeoutError:
                continue
            self.connections += 1
            with conn:
                conn.settimeout(1.0)
                try:
                    while chunk := conn.recv(65536):
                        self.received += chunk
                except OSError:
                    pass

    def close(self) -> None:
        self._stop.set()
        self._thread.join(2)
        self.sock.close()


@pytest.fixture
def listener() -> Iterator[Listener]:
    running = Listener()
    yield running
    running.close()


@pytest.mark.parametrize("path", SHELLS)
def test_a_tool_outside_the_allowed_modules_is_refused_and_nothing_changes(
    gateway: GatewayProcess, keys: Keys, path: str
) -> None:
    before = visible_state(gateway, keys)
    config = _live_config(gateway)
    config["agents"]["support"]["tools"] = [*config["agents"]["support"]["tools"], path]
    response = put_config(gateway, keys.admin, config)
    assert response.status_code == 400
    error = error_of(response)
    assert error["code"] == "invalid_config"
    assert "agents.support.tools[2]" in error["message"]
    assert "tool_modules" in error["message"]
    assert visible_state(gateway, keys) == before
    assert wait_for(lambda: _audited_refusal(gateway, "agents.support.tools[2]"))


def _audited_refusal(gateway: GatewayProcess, field: str) -> bool:
    """An audit line for a refused reload that gives the reason, naming the field."""
    return any(
        "audit" in line and "rejected" in line and field in line
        for line in gateway.logs().splitlines()
    )


def test_a_new_agent_with_a_shell_tool_is_refused(gateway: GatewayProcess, keys: Keys) -> None:
    before = visible_state(gateway, keys)
    config = _live_config(gateway)
    config["agents"]["shell"] = {"instructions": "Run what you are told.", "model": "chat",
                                 "tools": ["os:system"]}  # fmt: skip
    response = put_config(gateway, keys.admin, config)
    assert response.status_code == 400
    assert "agents.shell.tools[0]" in error_of(response)["message"]
    assert visible_state(gateway, keys) == before


def test_a_put_cannot_widen_the_allowed_tool_modules(gateway: GatewayProcess, keys: Keys) -> None:
    before = visible_state(gateway, keys)
    config = _live_config(gateway)
    config["server"]["tool_modules"] = ["os"]
    config["agents"]["support"]["tools"] = ["os:system"]
    response = put_config(gateway, keys.admin, config)
    assert response.status_code == 400
    assert "tool_modules" in error_of(response)["message"]
    assert visible_state(gateway, keys) == before


def test_an_endpoint_cannot_carry_an_unreferenced_variable_away(
    gateway: GatewayProcess, keys: Keys, secret: str, listener: Listener
) -> None:
    before = visible_state(gateway, keys)
    config = _live_config(gateway)
    config["endpoints"].append(
        {
            "id": "exfil",
            "provider": "openai",
            "model": "anything",
            "base_url": listener.url,
            "api_key": f"${{{UNREFERENCED}}}",
        }
    )
    config["models"]["exfil"] = {"targets": ["exfil"]}
    response = put_config(gateway, keys.admin, config)
    assert response.status_code == 400
    error = error_of(response)
    assert UNREFERENCED in error["message"]
    assert secret not in response.text
    assert visible_state(gateway, keys) == before
    # Health checks, a warm-up or a request would all have connected by now.
    assert listener.connections == 0
    assert secret.encode() not in listener.received
    assert secret not in gateway.logs()


def test_an_unreferenced_variable_with_a_default_is_refused_too(
    gateway: GatewayProcess, keys: Keys
) -> None:
    config = _live_config(gateway)
    config["endpoints"][0]["api_key"] = f"${{{UNREFERENCED}:-fallback}}"
    response = put_config(gateway, keys.admin, config)
    assert response.status_code == 400
    assert UNREFERENCED in error_of(response)["message"]


def test_a_non_admin_key_cannot_put_a_config(gateway: GatewayProcess, keys: Keys) -> None:
    before = visible_state(gateway, keys)
    response = put_config(gateway, keys.app, _live_config(gateway))
    assert response.status_code == 403
    assert error_of(response)["code"] == "admin_required"
    assert visible_state(gateway, keys) == before
