"""The edge of /generate and /stream: what is refused before anything runs, and how a
run that fails is answered."""

from __future__ import annotations

from typing import Any

import pytest
from agents_api_support import (
    ADMIN,
    APP,
    agents_section,
    calls,
    error_of,
    parse_sse,
    serve,
)

from bastion.testing import Fault

MESSAGE = {"role": "user", "content": "Hi"}

BAD_BODIES: list[tuple[Any, str | None, str]] = [
    (b"{not json", None, "invalid_json"),
    ([MESSAGE], None, "invalid_json"),
    ({}, "messages", "invalid_value"),
    ({"messages": []}, "messages", "invalid_value"),
    ({"prompt": ""}, "prompt", "invalid_value"),
    ({"prompt": "Hi", "messages": [MESSAGE]}, "prompt", "invalid_value"),
    ({"messages": [{"role": "robot", "content": "Hi"}]}, "messages[0].role", "invalid_value"),
    ({"messages": [MESSAGE, {"role": "user"}]}, "messages[1].content", "invalid_value"),
    ({"prompt": "Hi", "context": "gold"}, "context", "invalid_value"),
    ({"prompt": "Hi", "thread": "t1"}, "thread", "invalid_value"),
    ({"prompt": "Hi", "thread_id": ""}, "thread_id", "invalid_value"),
    ({"prompt": "Hi", "thread_id": "t1"}, "resource_id", "invalid_value"),
    ({"prompt": "Hi", "thread_id": "t1", "resource_id": 7}, "resource_id", "invalid_value"),
    ({"prompt": "Hi", "run_id": "a:b"}, "run_id", "invalid_value"),
]


@pytest.mark.parametrize("route", ["generate", "stream"])
@pytest.mark.parametrize(("body", "param", "code"), BAD_BODIES)
async def test_a_bad_body_is_a_400_naming_the_field_and_nothing_runs(
    tmp_path, route, body, param, code
) -> None:
    async with serve(tmp_path) as served:
        response = await served.post(f"/api/v1/agents/support/{route}", body)

        assert response.status == 400
        error = await error_of(response)
        assert (error["param"], error["code"], error["type"]) == (
            param,
            code,
            "invalid_request_error",
        )
        assert served.primary.attempts == []
        assert await served.gateway.agents.store.list_threads("u1") == []


@pytest.mark.parametrize("route", ["generate", "stream"])
async def test_an_unknown_agent_is_a_404(tmp_path, route) -> None:
    async with serve(tmp_path) as served:
        response = await served.post(f"/api/v1/agents/nobody/{route}", {"prompt": "Hi"}, ADMIN)

        assert response.status == 404
        assert (await error_of(response))["code"] == "agent_not_found"


async def test_a_run_id_in_use_is_a_409_and_the_first_run_keeps_its_steps(tmp_path) -> None:
    async with serve(tmp_path) as served:
        first = await served.post(
            "/api/v1/agents/support/generate", {"prompt": "Hi", "run_id": "r-1"}
        )
        again = await served.post(
            "/api/v1/agents/support/generate", {"prompt": "Yo", "run_id": "r-1"}
        )

        assert first.status == 200
        assert again.status == 409
        assert (await error_of(again))["param"] == "run_id"
        run = await (await served.get("/api/v1/runs/r-1")).json()
        assert run["steps"][0]["input"]["messages"][-1]["content"] == "Hi"
        assert len(served.primary.attempts) == 1


async def test_every_target_failing_is_a_502_listing_the_attempts(tmp_path) -> None:
    async with serve(tmp_path) as served:
        for upstream in served.fleet:
            upstream.set_default(Fault.status(503))
        body = {"prompt": "Hi", "thread_id": "t1", "resource_id": "u1"}

        response = await served.post("/api/v1/agents/support/generate", body)

        assert response.status == 502
        error = await error_of(response)
        assert [a["endpoint"] for a in error["attempts"]] == ["primary", "secondary"]
        run = await (await served.get(f"/api/v1/runs/{error['run_id']}")).json()
        assert run["status"] == "error"
        thread = await (await served.get("/api/v1/threads/t1", resource_id="u1")).json()
        assert thread["messages"] == []  # a failed run commits nothing


async def test_a_stream_that_fails_after_it_began_ends_with_an_error_event(tmp_path) -> None:
    async with serve(tmp_path) as served:
        served.primary.script(calls(("lookup_order", {"order_id": "42"})))
        served.primary.set_default(Fault.status(503))
        served.secondary.set_default(Fault.status(503))

        response = await served.post("/api/v1/agents/support/stream", {"prompt": "Order 42?"})

        assert response.status == 200
        events = parse_sse(await response.text())
        kind, error = events[-1]
        assert kind == "error"
        assert (error["kind"], error["status"], error["code"]) == (
            "unavailable",
            502,
            "upstream_failed",
        )
        assert error["run_id"] == response.headers["x-bastion-run-id"]
        assert "tool_result" in [k for k, _ in events]


async def test_reaching_the_step_limit_is_a_502_naming_the_bound(tmp_path) -> None:
    agents = agents_section(support={"instructions": "Hi", "model": "chat", "max_steps": 1,
                                     "tools": ["bastion.demo.tools:lookup_order"]})  # fmt: skip
    async with serve(tmp_path, agents=agents) as served:
        served.primary.script(calls(("lookup_order", {"order_id": "42"})))

        response = await served.post("/api/v1/agents/support/generate", {"prompt": "42?"}, APP)

        assert response.status == 502
        error = await error_of(response)
        assert (error["type"], error["code"]) == ("agent_error", "step_limit")
        assert "max_steps=1" in error["message"]
