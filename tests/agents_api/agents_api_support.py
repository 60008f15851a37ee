"""Seams for the agents API tests.

In-process: `create_app` over a real `Gateway`, served by aiohttp's `TestServer`, in
front of two in-process fake upstreams (`primary`, `secondary`) on loopback, with the
memory in a SQLite file in the test's tmp dir. End to end: the configs the
`bastion serve` subprocess gets (see conftest).
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from aiohttp.test_utils import TestClient, TestServer
from gateway_support import FleetProcess, gateway_config

from bastion.config import load_config
from bastion.server.app import create_app
from bastion.server.gateway import Gateway
from bastion.testing import FakeUpstream, Fault, Fleet

ADMIN = "admin-key-0123456789"
APP = "app-key-0123456789"  # support and failover
NARROW = "narrow-key-0123456789"  # support only
NONE = "none-key-0123456789"  # no agent at all
BOUND = "bound-key-0123456789"  # the served gateway's key of one resource

TOOLS = ["bastion.demo.tools:lookup_order", "bastion.demo.tools:get_time"]
ORDER_42 = '{"order_id": "42", "status": "shipped", "carrier": "DHL", "eta_days": 2}'


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def agents_section(**overrides: Any) -> dict[str, Any]:
    """`support` (chat: primary → secondary, the example tools, instructions with a
    context placeholder) and `failover` (primary without retries, then secondary)."""
    agents: dict[str, Any] = {
        "support": {
            "description": "Answers questions about orders.",
            "instructions": "You help {tier|standard} customers with their orders.",
            "model": "chat",
            "tools": TOOLS,
        },
        "failover": {
            "instructions": "Answer briefly.",
            "model": [{"model": "primary", "retries": 0}, "secondary"],
            "tools": TOOLS[:1],
        },
    }
    agents.update(overrides)
    return agents


def secret(name: str, value: str) -> str:
    """A secret as a config holds it: from the environment, `value` when unset (a PUT
    config may hold no literal secret)."""
    return f"${{{name}:-{value}}}"


def auth_section(admin: str, app: str, narrow: str, none: str) -> dict[str, Any]:
    return {
        "keys": [
            {"key": secret("T_ADMIN_KEY", admin), "name": "ops", "admin": True},
            {
                "key": secret("T_APP_KEY", app),
                "name": "app",
                "models": ["chat"],
                "agents": ["support", "failover"],
            },
            {"key": secret("T_NARROW_KEY", narrow), "name": "narrow", "agents": ["support"]},
            {"key": secret("T_NONE_KEY", none), "name": "none", "agents": []},
        ]
    }


def served_config(fleet: FleetProcess, store: Path) -> dict:
    """The gateway suite's config (chat: primary → secondary, fast retries, breakers
    out of reach) with the agents, their memory, and keys scoped to agents: `app` may
    use both agents, `other` only `support`, and `bound` only `support` on the one
    resource `bound-user`."""
    return gateway_config(
        fleet,
        memory={"store": f"sqlite:///{store}"},
        agents=agents_section(),
        auth={
            "keys": [
                {"key": "${BASTION_ADMIN_KEY}", "name": "ops", "admin": True},
                {"key": "${BASTION_APP_KEY}", "name": "app", "agents": ["support", "failover"]},
                {"key": "${BASTION_OTHER_KEY}", "name": "other", "agents": ["support"]},
                {
                    "key": secret("BASTION_BOUND_KEY", BOUND),
                    "name": "bound",
                    "agents": ["support"],
                    "resources": {"id": "bound-user"},
                },
            ]
        },
    )


def config_for(urls: dict[str, str], store: Path, **sections: Any) -> dict[str, Any]:
    config: dict[str, Any] = {
        "endpoints": [
            {
                "id": name,
                "provider": "openai",
                "model": f"model-{name}",
                "base_url": url,
                "api_key": secret("T_UPSTREAM_KEY", "upstream-key"),
                "health": False,
            }
            for name, url in urls.items()
        ],
        "models": {"chat": {"targets": ["primary", "secondary"]}},
        "health_checks": False,
        "breaker": {"consecutive_failures": 10_000, "min_calls": 10_000},
        "outlier": {"consecutive_errors": 10_000},
        "retry": {"server_error": {"retries": 0}, "unavailable": {"retries": 0}},
        "memory": {"store": f"sqlite:///{store}"},
        "agents": agents_section(),
        "auth": auth_section(ADMIN, APP, NARROW, NONE),
    }
    config.update(sections)
    return config


@dataclass
class Served:
    """A gateway app in-process, the client in front of it, the fleet behind it."""

    client: TestClient[Any, Any]
    gateway: Gateway
    fleet: Fleet
    config: dict[str, Any]

    @property
    def primary(self) -> FakeUpstream:
        return self.fleet["primary"]

    @property
    def secondary(self) -> FakeUpstream:
        return self.fleet["secondary"]

    async def post(self, path: str, body: Any, key: str = APP, **headers: str) -> Any:
        data = body if isinstance(body, bytes) else json.dumps(body).encode()
        return await self.client.post(
            path, data=data, headers={**bearer(key), **headers, "Content-Type": "application/json"}
        )

    async def get(self, path: str, key: str = ADMIN, **params: str) -> Any:
        return await self.client.get(path, headers=bearer(key), params=params)

    async def delete(self, path: str, key: str = ADMIN, **params: str) -> Any:
        return await self.client.delete(path, headers=bearer(key), params=params)


@asynccontextmanager
async def serve(tmp_path: Path, **sections: Any) -> AsyncIterator[Served]:
    async with Fleet(["primary", "secondary"]) as fleet:
        config = config_for(fleet.urls(), tmp_path / "memory.db", **sections)
        gateway = Gateway(load_config(config))
        async with TestClient(TestServer(create_app(gateway))) as client:
            yield Served(client, gateway, fleet, config)


def leases_held(store: Path) -> int:
    """How many thread leases the SQLite store file holds right now (read-only)."""
    with sqlite3.connect(f"file:{store}?mode=ro", uri=True) as db:
        (count,) = db.execute("SELECT count(*) FROM leases").fetchone()
    return int(count)


def calls(*pairs: tuple[str, dict[str, Any]]) -> Fault:
    """An upstream answer that calls these tools."""
    return Fault.ok(tool_calls=list(pairs))


def tool_messages(messages: Any) -> list[dict[str, Any]]:
    return [m for m in messages if m.get("role") == "tool"]


async def error_of(response: Any) -> dict[str, Any]:
    body = await response.json()
    error: dict[str, Any] = body["error"]
    return error


def parse_sse(text: str) -> list[tuple[str, dict[str, Any]]]:
    """`event:`/`data:` frames as (type, data) pairs, in order."""
    events = []
    for frame in text.strip().split("\n\n"):
        fields = dict(line.split(": ", 1) for line in frame.splitlines() if ": " in line)
        if "event" in fields:
            events.append((fields["event"], json.loads(fields["data"])))
    return events
