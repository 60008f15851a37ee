"""The config tests' shared parts: a config that needs no network, and the gateway
`bastion serve` would run from a file, in process, behind a real loopback client."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
from aiohttp.test_utils import TestClient

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
