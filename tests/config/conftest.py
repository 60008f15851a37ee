"""Fixtures for the config tests: a config file on disk, and the gateway `bastion serve`
would run from it, in process, behind a real loopback client."""

from __future__ import annotations

import sys
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
import pytest
from aiohttp.test_utils import TestClient, TestServer

from bastion.config import load_config
from bastion.server.app import create_app
from bastion.server.gateway import Gateway

# One scripted endpoint: a config that needs no network.
BASE = """\
endpoints:
  - {id: a, provider: scripted, model: m, reply: hi, health: false}
health_checks: false
"""


@dataclass
class Served:
    """A gateway started from `path`, as `bastion serve -c path` starts one."""

    path: Path
    gateway: Gateway
    client: TestClient[Any, Any]

    async def put_config(self, text: str) -> tuple[int, Any]:
        response = await self.client.put("/api/v1/config", data=text.encode())
        return response.status, orjson.loads(await response.read())

    async def status(self) -> Any:
        response = await self.client.get("/api/v1/status")
        assert response.status == 200
        return orjson.loads(await response.read())


Serve = Callable[[str], Awaitable[Served]]


@pytest.fixture
async def serve(tmp_path: Path) -> AsyncIterator[Serve]:
    clients: list[TestClient[Any, Any]] = []

    async def run(text: str) -> Served:
        path = tmp_path / "bastion.yaml"
        path.write_text(text)
        gateway = Gateway(load_config(path), source=path)
        client: TestClient[Any, Any] = TestClient(TestServer(create_app(gateway)))
        await client.start_server()
        clients.append(client)
        return Served(path, gateway, client)

    yield run
    for client in clients:
        await client.close()


@pytest.fixture
def own_module(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Callable[[str], str]]:
    """Write a module of the operator's own (on the path, outside any installed
    package) with one `@tool`, `lookup`; its name."""
    made: list[str] = []

    def make(name: str) -> str:
        code = (
            "from bastion import tool\n\n\n"
            "@tool\n"
            "def lookup(order_id: str) -> str:\n"
            '    """Find an order.\n\n    Args:\n        order_id: The order.\n    """\n'
            "    return order_id\n"
        )
        (tmp_path / "code").mkdir(exist_ok=True)
        (tmp_path / "code" / f"{name}.py").write_text(code)
        made.append(name)
        return name

    monkeypatch.syspath_prepend(str(tmp_path / "code"))
    yield make
    for name in made:
        sys.modules.pop(name, None)
