"""Keys' agent scopes: a key lists and runs only the agents it names; an app key reads
threads and runs only of the resources it is bound to (see test_agents_api_identity),
and deletes none."""

from __future__ import annotations

import pytest
from agents_api_support import ADMIN, APP, NARROW, NONE, bearer, error_of, serve


@pytest.mark.parametrize(
    ("key", "names"),
    [(ADMIN, ["support", "failover"]), (APP, ["support", "failover"]), (NARROW, ["support"]),
     (NONE, [])],
)  # fmt: skip
async def test_the_agent_list_shows_only_the_agents_the_key_may_use(tmp_path, key, names) -> None:
    async with serve(tmp_path) as served:
        response = await served.get("/api/v1/agents", key=key)

        assert response.status == 200
        assert [a["name"] for a in (await response.json())["data"]] == names


async def test_the_agent_list_shows_model_and_tool_schemas(tmp_path) -> None:
    async with serve(tmp_path) as served:
        agents = {a["name"]: a for a in (await (await served.get("/api/v1/agents")).json())["data"]}

        support, failover = agents["support"], agents["failover"]
        assert support["model"] == "chat"
        assert failover["model"] == [
            {"model": "primary", "retries": 0},
            {"model": "secondary", "retries": None},
        ]
        lookup = support["tools"][0]
        assert lookup["name"] == "lookup_order"
        assert lookup["parameters"]["required"] == ["order_id"]
        assert lookup["description"].startswith("Look up an order")


@pytest.mark.parametrize("route", ["generate", "stream", "ws"])
@pytest.mark.parametrize("key", [NARROW, NONE])
async def test_a_key_without_the_agent_in_its_scope_is_refused(tmp_path, key, route) -> None:
    async with serve(tmp_path) as served:
        path = f"/api/v1/agents/failover/{route}"
        if route == "ws":
            response = await served.client.get(path, headers=bearer(key))
        else:
            response = await served.post(path, {"prompt": "Hi"}, key)

        assert response.status == 403
        assert (await error_of(response))["code"] == "agent_not_allowed"
        assert served.primary.attempts == []


async def test_a_request_without_a_key_is_a_401(tmp_path) -> None:
    async with serve(tmp_path) as served:
        response = await served.client.post("/api/v1/agents/support/generate", json={"prompt": "x"})

        assert response.status == 401


@pytest.mark.parametrize(
    "path",
    ["/api/v1/threads?resource_id=u1", "/api/v1/threads/t1?resource_id=u1", "/api/v1/runs/r-1"],
)
async def test_an_app_key_bound_to_no_resource_reads_no_threads_or_runs(tmp_path, path) -> None:
    async with serve(tmp_path) as served:
        response = await served.client.get(path, headers=bearer(APP))

        assert response.status == 403
        assert (await error_of(response))["code"] == "resource_not_allowed"


async def test_deleting_a_thread_needs_an_admin_key(tmp_path) -> None:
    auth = {"keys": [{"key": APP, "name": "app", "resources": {"id": "u1"}}]}
    async with serve(tmp_path, auth=auth) as served:
        response = await served.delete("/api/v1/threads/t1", key=APP, resource_id="u1")

        assert response.status == 403
        assert (await error_of(response))["code"] == "admin_required"


async def test_each_run_counts_against_the_keys_request_limit(tmp_path) -> None:
    auth = {"keys": [{"key": APP, "name": "app", "requests_per_minute": 1}]}
    async with serve(tmp_path, auth=auth) as served:
        first = await served.post("/api/v1/agents/support/generate", {"prompt": "Hi"}, APP)
        second = await served.post("/api/v1/agents/support/stream", {"prompt": "Hi"}, APP)

        assert first.status == 200
        assert second.status == 429
        assert (await error_of(second))["code"] == "rate_limit_exceeded"
        assert "Retry-After" in second.headers
        assert len(served.primary.attempts) == 1
