"""`bastion serve --workers 2`, as real processes on loopback: one gateway behind one
port. Writes reach every worker before they answer, the metrics and the events cover
every worker, and a worker killed with SIGKILL is restarted with the current state.

Each request goes on a new connection, so that the kernel picks a worker for each."""

from __future__ import annotations

import json
import os
import re
import signal
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx
import pytest
import yaml
from gateway_support import (
    QUESTION,
    FleetProcess,
    GatewayProcess,
    Keys,
    MakeGateway,
    bearer,
    free_port,
    gateway_config,
    wait_for,
)
from prometheus_client.parser import text_string_to_metric_families

WORKERS = 2
CHAT = {"model": "chat", "messages": QUESTION}
# Enough requests that each worker answers some: a worker is picked per connection.
ROUNDS = 40


@pytest.fixture
def client(keys: Keys) -> Iterator[httpx.Client]:
    with httpx.Client(
        timeout=20,
        headers=bearer(keys.admin),
        limits=httpx.Limits(max_keepalive_connections=0),
    ) as fresh:
        yield fresh


@pytest.fixture
def start(make_gateway: MakeGateway, client: httpx.Client) -> Callable[[], GatewayProcess]:
    def started() -> GatewayProcess:
        server = make_gateway(port=free_port(), workers=WORKERS)
        # The health check that made it ready reached one worker: wait for the others.
        pids: set[int] = set()

        def all_answered() -> bool:
            pids.update(status["pid"] for status in statuses(client, server.url, rounds=4))
            return len(pids) == WORKERS

        assert wait_for(all_answered, timeout=20), server.logs()
        return server

    return started


def statuses(client: httpx.Client, url: str, rounds: int = ROUNDS) -> list[dict[str, Any]]:
    answers = [client.get(f"{url}/api/v1/status") for _ in range(rounds)]
    assert all(a.status_code == 200 for a in answers)
    return [a.json() for a in answers]


def requests_counted(client: httpx.Client, url: str) -> float:
    page = client.get(f"{url}/api/v1/metrics")
    assert page.status_code == 200
    return sum(
        sample.value
        for family in text_string_to_metric_families(page.text)
        if family.name == "bastion_requests"
        for sample in family.samples
    )


def chat(client: httpx.Client, url: str, keys: Keys) -> None:
    answer = client.post(f"{url}/v1/chat/completions", json=CHAT, headers=bearer(keys.app))
    assert answer.status_code == 200


def test_a_config_put_reaches_every_worker_before_it_answers(
    start: Callable[[], GatewayProcess], fleet: FleetProcess, client: httpx.Client
) -> None:
    server = start()
    config = gateway_config(fleet)
    config["models"]["fast"] = {"targets": ["secondary"]}
    put = client.put(f"{server.url}/api/v1/config", content=yaml.safe_dump(config))
    assert put.status_code == 200, put.text
    assert put.json()["workers"] == WORKERS
    assert put.json()["workers_applied"] == WORKERS
    seen = statuses(client, server.url)
    for status in seen:
        assert "fast" in [group["name"] for group in status["models"]], status["worker"]
        assert status["config"]["origin"] == "api"
        assert status["workers"] == WORKERS and status["state_scope"] == "worker"
        assert "rate_limits" in status["per_worker"] and "config" in status["shared"]
    assert {status["worker"] for status in seen} == set(range(WORKERS))


def test_isolate_and_recover_reach_every_worker(
    start: Callable[[], GatewayProcess], client: httpx.Client
) -> None:
    server = start()
    for action, isolated in (("isolate", True), ("recover", False)):
        answer = client.post(f"{server.url}/api/v1/endpoints/primary/{action}")
        assert answer.status_code == 200
        assert answer.headers["x-bastion-workers-applied"] == str(WORKERS)
        for status in statuses(client, server.url):
            (primary,) = [e for e in status["endpoints"] if e["id"] == "primary"]
            assert primary["isolated"] is isolated, (action, status["worker"])


def test_the_metrics_page_counts_every_worker_and_never_goes_backwards(
    start: Callable[[], GatewayProcess], keys: Keys, client: httpx.Client
) -> None:
    server = start()
    last = 0.0
    for sent in range(1, 13):
        chat(client, server.url, keys)
        for _ in range(3):
            counted = requests_counted(client, server.url)
            assert counted == sent, f"{counted} requests counted after {sent}"
            assert counted >= last
            last = counted
    page = client.get(f"{server.url}/api/v1/metrics").text
    # Gauges are each worker's: one per endpoint and worker.
    assert 'bastion_endpoint_in_service{endpoint="primary",worker="0"} 1.0' in page
    assert 'bastion_endpoint_in_service{endpoint="primary",worker="1"} 1.0' in page


def test_the_event_stream_carries_every_workers_events(
    start: Callable[[], GatewayProcess], keys: Keys, client: httpx.Client
) -> None:
    server = start()
    seen: set[int] = set()
    enough = threading.Event()

    def traffic() -> None:  # until both workers' events were seen (the relays connect
        # as the stream opens, not before)
        while not enough.wait(0.05):
            chat(client, server.url, keys)

    with httpx.stream(
        "GET", f"{server.url}/api/v1/events", headers=bearer(keys.admin), timeout=10
    ) as stream:
        lines = stream.iter_lines()
        assert next(lines).startswith(":")
        sender = threading.Thread(target=traffic)
        sender.start()
        deadline = time.monotonic() + 15
        try:
            for line in lines:
                if line.startswith("data: "):
                    seen.add(json.loads(line.removeprefix("data: "))["worker"])
                if seen == set(range(WORKERS)) or time.monotonic() > deadline:
                    break
        finally:
            enough.set()
            sender.join()
    assert seen == set(range(WORKERS))


def test_writes_landing_on_several_workers_at_once_end_the_same_everywhere(
    start: Callable[[], GatewayProcess], fleet: FleetProcess, client: httpx.Client
) -> None:
    server = start()

    def put(version: int) -> int:
        config = gateway_config(fleet)
        config["models"][f"v{version}"] = {"targets": ["secondary"]}
        return client.put(f"{server.url}/api/v1/config", content=yaml.safe_dump(config)).status_code

    with ThreadPoolExecutor(max_workers=6) as pool:
        assert list(pool.map(put, range(6))) == [200] * 6
    groups = {
        tuple(sorted(group["name"] for group in status["models"]))
        for status in statuses(client, server.url)
    }
    assert len(groups) == 1, groups


def _kill_one(client: httpx.Client, url: str) -> tuple[int, set[int]]:
    """SIGKILL the worker that answers; its pid and every worker pid before."""
    pids = {status["pid"] for status in statuses(client, url)}
    assert len(pids) == WORKERS
    victim = min(pids)
    os.kill(victim, signal.SIGKILL)
    return victim, pids


def test_a_killed_worker_is_logged_and_restarted_with_the_current_state(
    start: Callable[[], GatewayProcess], fleet: FleetProcess, keys: Keys, client: httpx.Client
) -> None:
    server = start()
    config = gateway_config(fleet)
    config["models"]["fast"] = {"targets": ["secondary"]}
    assert client.put(f"{server.url}/api/v1/config", content=yaml.safe_dump(config)).is_success
    assert client.post(f"{server.url}/api/v1/endpoints/primary/isolate").is_success
    for _ in range(10):
        chat(client, server.url, keys)
    before = requests_counted(client, server.url)

    victim, pids = _kill_one(client, server.url)
    assert wait_for(lambda: f"(pid {victim}) was killed by SIGKILL" in server.logs(), 10)

    def restarted() -> dict[str, Any] | None:
        for status in statuses(client, server.url, rounds=10):
            if status["pid"] not in pids:
                return status
        return None

    found: list[dict[str, Any]] = []
    assert wait_for(lambda: bool(found.append(restarted() or {}) or found[-1]), 20)
    fresh = found[-1]
    assert fresh["config"]["origin"] == "api"
    assert "fast" in [group["name"] for group in fresh["models"]]
    (primary,) = [e for e in fresh["endpoints"] if e["id"] == "primary"]
    assert primary["isolated"] is True
    # The dead worker's counts were carried over: the sum did not go backwards.
    assert requests_counted(client, server.url) >= before
    assert server.stop() == 0


def test_a_worker_that_keeps_dying_is_given_up_on_and_the_others_serve(
    start: Callable[[], GatewayProcess], keys: Keys, client: httpx.Client
) -> None:
    server = start()
    # Every restart now fails at start-up: the file it reads is no config.
    server.config_path.write_text("endpoints: [\n")
    victim, _ = _kill_one(client, server.url)
    assert wait_for(lambda: "crash-loops" in server.logs(), timeout=40), server.logs()
    assert f"(pid {victim}) was killed by SIGKILL" in server.logs()
    assert "1 of 2 workers left" in server.logs()
    for _ in range(10):
        chat(client, server.url, keys)
    assert server.proc.poll() is None


def test_workers_stop_when_the_supervisor_is_killed(
    start: Callable[[], GatewayProcess], client: httpx.Client
) -> None:
    server = start()
    pids = {status["pid"] for status in statuses(client, server.url)}
    with open(f"/proc/{min(pids)}/environ", "rb") as worker_environment:
        environ = worker_environment.read()
    server.proc.kill()
    server.proc.wait(5)

    def gone(pid: int) -> bool:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return True
        # Orphans are reaped by init; a zombie left for it counts as gone.
        try:
            with open(f"/proc/{pid}/stat") as stat:
                return stat.read().rsplit(")", 1)[1].split()[0] == "Z"
        except OSError:
            return True

    assert wait_for(lambda: all(gone(pid) for pid in pids), timeout=15)
    # The private sockets' directory goes with the last of them.
    runtime = re.search(rb"BASTION_RUNTIME_DIR=([^\x00]+)", environ).group(1).decode()
    assert not os.path.exists(runtime)
