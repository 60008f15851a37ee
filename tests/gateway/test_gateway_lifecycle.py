"""The server's life around its requests: a client leaving mid-stream, a graceful
shutdown with a stream in flight, and several worker processes on one port."""

from __future__ import annotations

import json
import signal
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from gateway_support import (
    DRAIN_TIMEOUT,
    QUESTION,
    FleetProcess,
    GatewayProcess,
    Keys,
    MakeGateway,
    bearer,
    free_port,
    wait_for,
)

from bastion.testing import DEFAULT_TEXT

STREAM = {"model": "chat", "messages": QUESTION, "stream": True}


def sse_text(lines: Iterator[str]) -> tuple[str, bool]:
    """The answer text of an SSE chat stream, and whether it ended with [DONE]."""
    text = []
    for line in lines:
        if not line.startswith("data: "):
            continue
        data = line.removeprefix("data: ")
        if data == "[DONE]":
            return "".join(text), True
        chunk = json.loads(data)
        assert "error" not in chunk, chunk
        text.extend(c["delta"].get("content") or "" for c in chunk["choices"])
    return "".join(text), False


def refuses_connections(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
    except (ConnectionRefusedError, ConnectionResetError):
        # Reset: it reached the backlog of a listener that was closing, unaccepted.
        return True
    return False


def test_a_client_leaving_mid_stream_cancels_the_upstream_attempt(
    gateway: GatewayProcess, keys: Keys, fleet: FleetProcess
) -> None:
    # Six chunks a quarter of a second apart: the whole answer would take 1.5 s.
    fleet.set_default("primary", {"kind": "ok", "chunk_delay": 0.25})
    with httpx.stream(
        "POST",
        f"{gateway.url}/v1/chat/completions",
        json=STREAM,
        headers=bearer(keys.app),
        timeout=10,
    ) as response:
        assert response.status_code == 200
        first = next(line for line in response.iter_lines() if line.startswith("data: "))
        assert "content" in first
    left_at = time.monotonic()
    assert wait_for(lambda: fleet.outcomes("primary") == ["client_disconnected"])
    (attempt,) = fleet.attempts("primary")
    # The upstream saw the hang-up soon after the client's, not at the answer's end.
    assert attempt["ended_at"] - left_at < 0.75
    assert fleet.attempts("secondary") == []


@pytest.mark.parametrize("workers", [1, 2])
def test_sigterm_lets_the_stream_in_flight_finish_and_refuses_new_connections(
    make_gateway: MakeGateway, keys: Keys, fleet: FleetProcess, workers: int
) -> None:
    # With two workers the signal goes to the supervisor, which passes it on.
    server = make_gateway(port=free_port(), workers=workers)
    fleet.set_default("primary", {"kind": "ok", "chunk_delay": 0.2})
    with httpx.stream(
        "POST",
        f"{server.url}/v1/chat/completions",
        json=STREAM,
        headers=bearer(keys.app),
        timeout=10,
    ) as response:
        assert response.status_code == 200
        lines = response.iter_lines()
        first = next(line for line in lines if line.startswith("data: "))
        stopping_at = time.monotonic()
        server.signal(signal.SIGTERM)
        assert wait_for(lambda: refuses_connections(server.port), timeout=1.0)
        rest, done = sse_text(lines)
    assert done, "the stream in flight was cut by the shutdown"
    assert sse_text(iter([first]))[0] + rest == DEFAULT_TEXT
    assert server.proc.wait(DRAIN_TIMEOUT + 2) == 0
    assert time.monotonic() - stopping_at < DRAIN_TIMEOUT + 2
    assert fleet.outcomes("primary") == ["ok"]


def _children(parent: int) -> set[int]:
    """The worker processes of `parent` (Linux /proc)."""
    found = set()
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
            cmdline = (stat.parent / "cmdline").read_bytes()
        except (OSError, IndexError):
            continue
        if int(fields[1]) == parent and b"bastion.server.workers.worker" in cmdline:
            found.add(int(stat.parent.name))
    return found


def _running(pid: int) -> bool:
    """Whether `pid` is a live process (a zombie waiting to be reaped is not)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state not in ("Z", "X")


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="reads /proc")
def test_two_workers_serve_one_port(make_gateway: MakeGateway, keys: Keys) -> None:
    server = make_gateway(port=free_port(), workers=2)
    workers = _children(server.proc.pid)
    assert len(workers) == 2
    answered: set[int] = set()
    # A connection per request, so that the kernel picks a worker for each one.
    with httpx.Client(
        base_url=server.url, timeout=10, limits=httpx.Limits(max_keepalive_connections=0)
    ) as client:

        def both_answered() -> bool:
            status = client.get("/api/v1/status", headers=bearer(keys.admin))
            assert status.status_code == 200
            answered.add(status.json()["pid"])
            return answered == workers

        # The second worker may still be starting when the first answers health.
        assert wait_for(both_answered, timeout=10.0), f"{answered} of {workers} answered"
        for _ in range(10):
            answer = client.post(
                "/v1/chat/completions",
                json={"model": "chat", "messages": QUESTION},
                headers=bearer(keys.app),
            )
            assert answer.status_code == 200
            assert answer.json()["choices"][0]["message"]["content"] == DEFAULT_TEXT
    assert server.stop() == 0
    assert not any(_running(pid) for pid in workers)
