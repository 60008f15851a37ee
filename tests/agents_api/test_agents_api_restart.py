"""A gateway killed mid-run and started again on the same store: the thread it was on is
served at once, and the run it was serving reads as failed (interrupted), not running.

`bastion serve` is a real subprocess, killed with SIGKILL (no shutdown code runs), in
front of the simulated fleet, with its memory in a SQLite file, in PostgreSQL (a schema
of the test's own) or in Redis (the tests' database; the keys the test made are
removed)."""

from __future__ import annotations

import asyncio
import json
import socket
import sys
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest
import redis
from agents_api_support import leases_held, served_config
from gateway_support import FleetProcess, GatewayProcess, Keys, bearer, free_port, wait_for

# The memory suite's service helpers (where PostgreSQL and Redis are; skip or fail).
sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "memory"))

from memory_support import POSTGRES_DSN, REDIS_URL, require_postgres, require_redis


def send_and_leave(url: str, key: str, path: str, body: dict[str, Any]) -> socket.socket:
    """Send a request and read nothing back: the caller waits on its own terms."""
    host, port = url.removeprefix("http://").split(":")
    data = json.dumps(body).encode()
    head = (
        f"POST {path} HTTP/1.1\r\nHost: {host}\r\nAuthorization: Bearer {key}\r\n"
        f"Content-Type: application/json\r\nContent-Length: {len(data)}\r\n\r\n"
    )
    sock = socket.create_connection((host, int(port)))
    sock.sendall(head.encode() + data)
    return sock


Store = tuple[str, Callable[[], int]]


async def _postgres(statement: str) -> Any:
    conn = await asyncpg.connect(POSTGRES_DSN)
    try:
        return await conn.fetchval(statement)
    finally:
        await conn.close()


@pytest.fixture(params=["sqlite", "postgres", "redis"])
def store(
    request: pytest.FixtureRequest, tmp_path: Path
) -> Iterator[tuple[str, Callable[[], int]]]:
    """(the `memory.store` URL, how many thread leases the store holds) on the test's
    own data, removed afterwards."""
    tag = uuid.uuid4().hex[:12]
    if request.param == "sqlite":
        path = tmp_path / "memory.db"
        yield f"sqlite:///{path}", lambda: leases_held(path)
    elif request.param == "postgres":
        asyncio.run(require_postgres())
        schema = f"test_{tag}"
        asyncio.run(_postgres(f'CREATE SCHEMA "{schema}"'))
        count = f'SELECT count(*) FROM "{schema}".leases'
        yield f"{POSTGRES_DSN}?search_path={schema}", lambda: int(asyncio.run(_postgres(count)))
        asyncio.run(_postgres(f'DROP SCHEMA "{schema}" CASCADE'))
    else:
        asyncio.run(require_redis())
        client = redis.Redis.from_url(REDIS_URL)
        pattern = "bastion:memory:*"  # the store's own prefix, on the tests' database
        before = set(client.scan_iter(match=pattern))
        yield REDIS_URL, lambda: len(set(client.scan_iter(match="bastion:memory:lease:*")) - before)
        if made := set(client.scan_iter(match=pattern)) - before:
            client.delete(*made)
        client.close()


def run_status(url: str, key: str, run_id: str) -> dict[str, Any] | None:
    response = httpx.get(f"{url}/api/v1/runs/{run_id}", headers=bearer(key))
    return response.json() if response.status_code == 200 else None


def test_a_gateway_killed_mid_run_frees_the_thread_and_fails_the_run_on_restart(
    clean_fleet: FleetProcess,
    keys: Keys,
    tmp_path: Path,
    store: Store,
) -> None:
    url, leases = store
    config = served_config(clean_fleet, tmp_path / "unused.db")
    # A short wait: a thread still held answers 409 thread_busy after 1 s, where the
    # default would wait 30 s. The lease itself outlives a crashed holder by 60 s.
    config["memory"] = {"store": url, "wait": "1s", "lease_ttl": "60s"}
    thread_id, run_id = f"t-{uuid.uuid4().hex[:8]}", f"r-{uuid.uuid4().hex[:8]}"
    for name in ("primary", "secondary"):
        clean_fleet.set_default(name, {"kind": "hang"})
    port = free_port()
    first = GatewayProcess(config, tmp_path, keys, port=port)
    turn = {"thread_id": thread_id, "resource_id": "user-7", "context": {"tier": "gold"}}
    path = "/api/v1/agents/support/generate"
    hanging = send_and_leave(first.url, keys.app, path, {"prompt": "Hi", "run_id": run_id, **turn})
    try:
        assert wait_for(lambda: leases() == 1, timeout=10.0)  # mid-run, thread held
        assert (run_status(first.url, keys.admin, run_id) or {}).get("status") == "running"
        first.proc.kill()
        first.stop()
    finally:
        hanging.close()
    clean_fleet.reset()

    second = GatewayProcess(config, tmp_path, keys, port=port)
    try:
        response = httpx.post(
            f"{second.url}{path}",
            json={"prompt": "Hello again", **turn},
            headers=bearer(keys.app),
            timeout=20,
        )
        interrupted = run_status(second.url, keys.admin, run_id)
        thread = httpx.get(
            f"{second.url}/api/v1/threads/{thread_id}",
            params={"resource_id": "user-7"},
            headers=bearer(keys.admin),
        ).json()
    finally:
        second.stop()

    assert response.status_code == 200, response.text
    assert interrupted is not None
    assert interrupted["status"] == "error"
    assert interrupted["error"] == "interrupted: the process serving it stopped"
    assert interrupted["ended_at"] is not None
    # The interrupted run committed nothing; the next one's turn is all the thread holds.
    assert [m["role"] for m in thread["messages"]] == ["user", "assistant"]
    assert thread["messages"][0]["content"] == "Hello again"
