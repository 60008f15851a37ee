"""Fixtures for the config tests: a config file on disk and the gateway started from it
(`serve`), and a module of the operator's own (`own_module`)."""

from __future__ import annotations

import sys
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer
from config_support import Serve, Served

from bastion.config import load_config
from bastion.server.app import create_app
from bastion.server.gateway import Gateway


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
