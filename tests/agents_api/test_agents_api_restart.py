"""A gateway killed mid-run and started again on the same store: the thread it was on is
served at once, and the run it was serving reads as failed (interrupted), not running.

`bastion serve` is a real subprocess, killed with SIGKILL (no shutdown code runs), in
front of the simulated fleet, with its memory in a SQLite file."""

from __future__ import annotations

import asyncio
import json
import socket
import sqlite3
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from agents_api_support import ADMIN, APP, config_for, served_config
from aiohttp.test_utils import TestClient, TestServer
from gateway_support import FleetProcess, GatewayProcess, Keys, bearer, free_port, wait_for

from bastion.config import ConfigError, load_config
from bastion.server.agents.host import WORKER_INDEX_ENV, replica_id
from bastion.server.app import create_app
from bastion.server.gateway import Gateway
from bastion.testing import Fault, Fleet


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


def leases_held(store: Path) -> int:
    with sqlite3.connect(f"file:{store}?mode=ro", uri=True) as db:
        (count,) = db.execute("SELECT count(*) FROM leases").fetchone()
    return int(count)


def run_status(url: str, key: str, run_id: str) -> dict[str, Any] | None:
    response = httpx.get(f"{url}/api/v1/runs/{run_id}", headers=bearer(key))
    return response.json() if response.status_code == 200 else None


def test_a_gateway_killed_mid_run_frees_the_thread_and_fails_the_run_on_restart(
    clean_fleet: FleetProcess, keys: Keys, tmp_path: Path
) -> None:
    store = tmp_path / "memory.db"
    config = served_config(clean_fleet, store)
    # A short wait: a thread still held answers 409 thread_busy after 1 s, where the
    # default would wait 30 s. The lease itself outlives a crashed holder by 60 s.
    config["memory"] = {"store": f"sqlite:///{store}", "wait": "1s", "lease_ttl": "60s"}
    for name in ("primary", "secondary"):
        clean_fleet.set_default(name, {"kind": "hang"})
    port = free_port()
    first = GatewayProcess(config, tmp_path, keys, port=port)
    turn = {"thread_id": "t-crash", "resource_id": "user-7", "context": {"tier": "gold"}}
    path = "/api/v1/agents/support/generate"
    hanging = send_and_leave(first.url, keys.app, path, {"prompt": "Hi", "run_id": "r-1", **turn})
    try:
        assert wait_for(lambda: leases_held(store) == 1, timeout=10.0)  # mid-run, thread held
        assert (run_status(first.url, keys.admin, "r-1") or {}).get("status") == "running"
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
        interrupted = run_status(second.url, keys.admin, "r-1")
        thread = httpx.get(
            f"{second.url}/api/v1/threads/t-crash",
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


# --- in process: the replica id, and replicas that share a store ----------------------


def test_the_replica_id_is_the_same_for_the_same_gateway_and_differs_between_gateways(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    source, other = tmp_path / "a.yaml", tmp_path / "b.yaml"
    monkeypatch.delenv(WORKER_INDEX_ENV, raising=False)

    same = replica_id(None, source, 8080)

    assert replica_id(None, source, 8080, 0) == same  # a restart finds itself again
    assert same.startswith(socket.gethostname())
    distinct = {
        same,
        replica_id(None, source, 8081),
        replica_id(None, other, 8080),
        replica_id(None, source, 8080, 1),
    }
    assert len(distinct) == 4
    assert replica_id("pod-3", source, 8080, 2) == "pod-3/2"
    # Nothing to tell this gateway by (no file, or any free port): a fresh id each time.
    assert replica_id(None, None, 8080) != replica_id(None, None, 8080)
    assert replica_id(None, source, 0) != replica_id(None, source, 0)
    monkeypatch.setenv(WORKER_INDEX_ENV, "3")
    assert replica_id(None, source, 8080) == replica_id(None, source, 8080, 3)


@pytest.mark.parametrize("value", ["-1", "two", ""])
def test_a_bad_worker_index_is_refused_naming_the_variable(
    value: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(WORKER_INDEX_ENV, value)

    with pytest.raises(ConfigError, match=WORKER_INDEX_ENV):
        replica_id(None, tmp_path / "a.yaml", 8080)


async def test_a_second_worker_starting_on_the_store_leaves_the_first_ones_run_alone(
    tmp_path: Path,
) -> None:
    store = tmp_path / "memory.db"
    source = tmp_path / "bastion.yaml"
    async with Fleet(["primary", "secondary"]) as fleet:
        fleet["primary"].script(Fault.hang())  # the first run; any next one is answered
        memory = {"store": f"sqlite:///{store}", "wait": "0.2s"}
        source.write_text(yaml.safe_dump(config_for(fleet.urls(), store, memory=memory)))
        config = load_config(source)
        turn = {"thread_id": "t", "resource_id": "user-7", "context": {"tier": "gold"}}
        path = "/api/v1/agents/support/generate"
        first = Gateway(config, source=source, port=8080, worker=0)
        async with TestClient(TestServer(create_app(first))) as one:
            running = asyncio.create_task(
                one.post(path, json={"prompt": "Hi", "run_id": "r-1", **turn}, headers=bearer(APP))
            )
            for _ in range(500):  # until the run holds the thread, mid-run
                if leases_held(store):
                    break
                await asyncio.sleep(0.02)
            second = Gateway(config, source=source, port=8080, worker=1)
            async with TestClient(TestServer(create_app(second))) as two:
                busy = await two.post(path, json={"prompt": "Me too", **turn}, headers=bearer(APP))
                refusal = await busy.json()
                run = await (await two.get("/api/v1/runs/r-1", headers=bearer(ADMIN))).json()
            running.cancel()
            await asyncio.gather(running, return_exceptions=True)

    assert busy.status == 409
    assert refusal["error"]["code"] == "thread_busy"
    assert run["status"] == "running"
    assert first.replica_id != second.replica_id
