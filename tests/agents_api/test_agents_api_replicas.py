"""Each gateway process is a replica with an id of its own, stable across restarts: the
id's parts, and two workers of one gateway sharing a store without touching each
other's leases or runs (in process, over a SQLite file)."""

from __future__ import annotations

import asyncio
import socket
from pathlib import Path

import pytest
import yaml
from agents_api_support import ADMIN, APP, bearer, config_for, leases_held
from aiohttp.test_utils import TestClient, TestServer

from bastion.config import ConfigError, load_config
from bastion.server.agents.host import WORKER_INDEX_ENV, replica_id
from bastion.server.app import create_app
from bastion.server.gateway import Gateway
from bastion.testing import Fault, Fleet


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


def test_server_replica_id_names_the_gateway_and_each_worker_adds_its_index(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    urls = {"primary": "http://127.0.0.1:9/v1", "secondary": "http://127.0.0.1:9/v1"}
    config = load_config(config_for(urls, tmp_path / "memory.db", server={"replica_id": "pod-3"}))
    monkeypatch.setenv(WORKER_INDEX_ENV, "2")

    assert Gateway(config).replica_id == "pod-3/2"
    assert Gateway(config, worker=0).replica_id == "pod-3/0"
    with pytest.raises(ConfigError, match=r"server\.replica_id"):
        load_config(config_for(urls, tmp_path / "memory.db", server={"replica_id": "pod 3"}))
