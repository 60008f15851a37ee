"""Durable runs (`durability:` on DBOS, SQLite): a gateway killed mid-run resumes the run
when it starts again under the same replica id. The tool call that finished before the
kill is replayed from its record, not run again; the model call that was hanging is
made again; the run ends `ok` with its final answer stored.

`bastion serve` is a real subprocess, killed with SIGKILL (no shutdown code runs), in
front of the simulated fleet (a real subprocess too)."""

from __future__ import annotations

import os
import uuid
from pathlib import Path
from typing import Any

import httpx
import pytest
from agents_api_support import served_config
from gateway_support import FleetProcess, GatewayProcess, Keys, bearer, free_port, wait_for
from test_agents_api_restart import send_and_leave

pytest.importorskip("dbos")

HERE = Path(__file__).resolve().parent
PATH = "/api/v1/agents/recorder/generate"


@pytest.fixture(autouse=True)
def importable_tools(monkeypatch: pytest.MonkeyPatch) -> None:
    """`bastion serve` imports `durable_tools` from this directory."""
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(HERE), os.environ.get("PYTHONPATH", "")]))


def durable_config(fleet: FleetProcess, tmp_path: Path) -> dict[str, Any]:
    config = served_config(fleet, tmp_path / "memory.db")
    config["agents"] = {
        "recorder": {
            "instructions": "Record what you are told.",
            "model": [{"model": "primary", "retries": 0}],
            "tools": ["durable_tools:record"],
            "memory": False,
        }
    }
    config["auth"]["keys"] = config["auth"]["keys"][:2]
    config["auth"]["keys"][1]["agents"] = ["recorder"]
    config["server"] = {"replica_id": "durable-test", "tool_modules": ["durable_tools"]}
    config["durability"] = {"engine": "dbos", "database": f"sqlite:///{tmp_path / 'runs.db'}"}
    return config


def run_record(url: str, key: str, run_id: str) -> dict[str, Any] | None:
    response = httpx.get(f"{url}/api/v1/runs/{run_id}", headers=bearer(key))
    return response.json() if response.status_code == 200 else None


def steps_of(url: str, key: str, run_id: str) -> list[dict[str, Any]]:
    steps: list[dict[str, Any]] = (run_record(url, key, run_id) or {}).get("steps", [])
    return steps


def test_a_run_killed_mid_model_call_resumes_on_restart_without_running_its_tool_again(
    clean_fleet: FleetProcess, keys: Keys, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    tool_log = tmp_path / "tool.log"
    monkeypatch.setenv("BASTION_TEST_TOOL_LOG", str(tool_log))
    config = durable_config(clean_fleet, tmp_path)
    run_id = f"r-{uuid.uuid4().hex[:8]}"
    clean_fleet.script("primary", {"kind": "ok", "tool_calls": [["record", {"note": "alpha"}]]})
    clean_fleet.set_default("primary", {"kind": "hang"})

    first = GatewayProcess(config, tmp_path, keys)
    body = {"prompt": "Record alpha", "run_id": run_id}
    hanging = send_and_leave(first.url, keys.app, PATH, body)
    try:
        # The tool step is recorded; the second model call hangs upstream.
        assert wait_for(lambda: len(steps_of(first.url, keys.admin, run_id)) == 2, timeout=15.0)
        assert tool_log.read_text().splitlines() == [f"alpha {run_id}:0:0"]
        assert (run_record(first.url, keys.admin, run_id) or {}).get("status") == "running"
        first.proc.kill()
        first.stop()
    finally:
        hanging.close()
    clean_fleet.reset()
    clean_fleet.set_default("primary", {"kind": "ok", "text": "Alpha is recorded."})

    second = GatewayProcess(config, tmp_path, keys)
    try:
        done = wait_for(
            lambda: (run_record(second.url, keys.admin, run_id) or {}).get("status") != "running",
            timeout=20.0,
        )
        record = run_record(second.url, keys.admin, run_id)
        answered = clean_fleet.outcomes("primary").count("ok")
    finally:
        second.stop()

    assert done, second.logs()
    assert record is not None
    assert (record["status"], record["error"]) == ("ok", None)
    assert tool_log.read_text().splitlines() == [f"alpha {run_id}:0:0"]  # ran once
    assert answered == 1  # only the model call in flight was made again
    steps = record["steps"]
    assert [s["kind"] for s in steps] == ["model", "tool", "model"]
    assert steps[1]["output"] == {"result": "recorded alpha"}
    assert steps[2]["output"]["message"]["content"] == "Alpha is recorded."
    assert "interrupted" not in second.logs()


def test_durability_off_by_default_leaves_a_killed_run_interrupted(
    clean_fleet: FleetProcess, keys: Keys, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("BASTION_TEST_TOOL_LOG", str(tmp_path / "tool.log"))
    config = durable_config(clean_fleet, tmp_path)
    del config["durability"]
    run_id = f"r-{uuid.uuid4().hex[:8]}"
    clean_fleet.set_default("primary", {"kind": "hang"})
    first = GatewayProcess(config, tmp_path, keys)
    hanging = send_and_leave(first.url, keys.app, PATH, {"prompt": "Record", "run_id": run_id})
    try:
        assert wait_for(lambda: run_record(first.url, keys.admin, run_id) is not None, 15.0)
        first.proc.kill()
        first.stop()
    finally:
        hanging.close()
    clean_fleet.reset()
    second = GatewayProcess(config, tmp_path, keys)
    try:
        record = run_record(second.url, keys.admin, run_id)
    finally:
        second.stop()
    assert record is not None and record["status"] == "error"
    assert not (tmp_path / "runs.db").exists()


def test_a_durability_database_out_of_reach_stops_the_start_in_one_line_without_secrets(
    fleet: FleetProcess, keys: Keys, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = durable_config(fleet, tmp_path)
    closed = free_port()  # nothing listens there
    password = "pw-" + uuid.uuid4().hex[:8]
    config["durability"]["database"] = f"postgresql://bastion:{password}@127.0.0.1:{closed}/x"
    with pytest.raises(RuntimeError, match="bastion serve exited") as failed:
        GatewayProcess(config, tmp_path, keys)
    logs = str(failed.value)
    assert "durability.database: cannot open postgresql://bastion:***@127.0.0.1" in logs
    assert password not in logs
    assert "Traceback" not in logs
