"""A gateway killed mid-run and started again on the same store: the thread it was on is
served at once, and the run it was serving reads as failed (interrupted), not running.

`bastion serve` is a real subprocess, killed with SIGKILL (no shutdown code runs), in
front of the simulated fleet, with its memory in a SQLite file."""

from __future__ import annotations

import json
import socket
from pathlib import Path
from typing import Any

import httpx
from agents_api_support import leases_held, served_config
from gateway_support import FleetProcess, GatewayProcess, Keys, bearer, free_port, wait_for


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
