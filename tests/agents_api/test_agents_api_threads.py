"""Threads and runs over HTTP: a thread is only ever reached with the resource that owns
it; another resource is refused and nothing changes."""

from __future__ import annotations

import pytest
from agents_api_support import APP, agents_section, calls, error_of, serve

ALICE = {"thread_id": "t1", "resource_id": "alice"}
BOB = {"thread_id": "t1", "resource_id": "bob"}


async def start_thread(served) -> dict:
    response = await served.post("/api/v1/agents/support/generate", {"prompt": "Hi", **ALICE})
    assert response.status == 200
    return await (await served.get("/api/v1/threads/t1", resource_id="alice")).json()


@pytest.mark.parametrize("route", ["generate", "stream"])
async def test_a_run_on_another_resources_thread_is_refused_and_changes_nothing(
    tmp_path, route
) -> None:
    async with serve(tmp_path) as served:
        before = await start_thread(served)
        attempts = len(served.primary.attempts)

        response = await served.post(f"/api/v1/agents/support/{route}", {"prompt": "Mine?", **BOB})

        assert response.status == 403
        error = await error_of(response)
        assert (error["code"], error["param"]) == ("wrong_resource", "resource_id")
        assert len(served.primary.attempts) == attempts  # no model was asked
        after = await (await served.get("/api/v1/threads/t1", resource_id="alice")).json()
        assert after == before


async def test_reading_another_resources_thread_is_refused(tmp_path) -> None:
    async with serve(tmp_path) as served:
        await start_thread(served)

        response = await served.get("/api/v1/threads/t1", resource_id="bob")

        assert response.status == 403
        assert (await error_of(response))["code"] == "wrong_resource"


async def test_deleting_another_resources_thread_is_refused_and_the_thread_stays(
    tmp_path,
) -> None:
    async with serve(tmp_path) as served:
        before = await start_thread(served)

        refused = await served.delete("/api/v1/threads/t1", resource_id="bob")

        assert refused.status == 403
        after = await (await served.get("/api/v1/threads/t1", resource_id="alice")).json()
        assert after == before
        assert len(after["messages"]) == 2


async def test_the_owner_lists_reads_and_deletes_its_thread(tmp_path) -> None:
    async with serve(tmp_path) as served:
        thread = await start_thread(served)
        listed = await (await served.get("/api/v1/threads", resource_id="alice")).json()
        others = await (await served.get("/api/v1/threads", resource_id="bob")).json()

        deleted = await served.delete("/api/v1/threads/t1", resource_id="alice")
        gone = await served.get("/api/v1/threads/t1", resource_id="alice")

        assert [t["id"] for t in listed["data"]] == ["t1"]
        assert others["data"] == []
        assert (thread["version"], [m["role"] for m in thread["messages"]]) == (
            1,
            ["user", "assistant"],
        )
        assert await deleted.json() == {"id": "t1", "deleted": True}
        assert gone.status == 404


@pytest.mark.parametrize(
    ("path", "params", "param"),
    [
        ("/api/v1/threads", {}, "resource_id"),
        ("/api/v1/threads", {"resource_id": "a", "limit": "0"}, "limit"),
        ("/api/v1/threads", {"resource_id": "a", "offset": "x"}, "offset"),
        ("/api/v1/threads/t1", {}, "resource_id"),
        ("/api/v1/threads/t1", {"resource_id": "a", "last": "-1"}, "last"),
    ],
)
async def test_bad_thread_queries_are_400s_naming_the_parameter(
    tmp_path, path, params, param
) -> None:
    async with serve(tmp_path) as served:
        response = await served.get(path, **params)

        assert response.status == 400
        assert (await error_of(response))["param"] == param


async def test_a_run_is_read_back_with_its_steps(tmp_path) -> None:
    async with serve(tmp_path) as served:
        served.primary.script(calls(("lookup_order", {"order_id": "42"})))
        body = {"prompt": "Where is 42?", "run_id": "run-42", **ALICE}
        assert (await served.post("/api/v1/agents/support/generate", body)).status == 200

        run = await (await served.get("/api/v1/runs/run-42")).json()

        assert (run["id"], run["agent"], run["status"], run["thread_id"]) == (
            "run-42",
            "support",
            "ok",
            "t1",
        )
        assert [(s["index"], s["kind"], s["name"], s["status"]) for s in run["steps"]] == [
            (0, "model", "chat", "ok"),
            (1, "tool", "lookup_order", "ok"),
            (2, "model", "chat", "ok"),
        ]
        assert run["steps"][1]["input"]["idempotency_key"] == "run-42:0:0"


async def test_an_unknown_run_is_a_404(tmp_path) -> None:
    async with serve(tmp_path) as served:
        response = await served.get("/api/v1/runs/nope")

        assert response.status == 404
        assert (await error_of(response))["code"] == "run_not_found"


async def test_agents_without_memory_record_their_runs_but_keep_no_thread(tmp_path) -> None:
    agents = agents_section(support={"instructions": "Hi", "model": "chat", "memory": False})
    async with serve(tmp_path, agents=agents) as served:
        body = {"prompt": "Hi", "run_id": "r-1", **ALICE}

        response = await served.post("/api/v1/agents/support/generate", body, APP)

        assert response.status == 200
        assert (await (await served.get("/api/v1/runs/r-1")).json())["thread_id"] == "t1"
        assert (await served.get("/api/v1/threads/t1", resource_id="alice")).status == 404


async def test_a_gateway_without_agents_opens_no_store(tmp_path) -> None:
    async with serve(tmp_path, agents={}, auth=None) as served:
        threads = await served.get("/api/v1/threads", resource_id="alice")
        run = await served.get("/api/v1/runs/r-1")
        agents = await served.get("/api/v1/agents")

        assert served.gateway.agents.store is None
        assert not (tmp_path / "memory.db").exists()
        assert (await threads.json())["data"] == []
        assert run.status == 404
        assert (await agents.json())["data"] == []
