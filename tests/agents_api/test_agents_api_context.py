"""Runtime context from the body and from `x-bastion-context-*` headers reaches the
instructions and the tools; the body wins."""

from __future__ import annotations

import json

from agents_api_support import APP, agents_section, bearer, calls, error_of, serve, tool_messages


async def test_header_context_fills_the_instructions(tmp_path) -> None:
    async with serve(tmp_path) as served:
        response = await served.post(
            "/api/v1/agents/support/generate",
            {"prompt": "Hi"},
            **{"x-bastion-context-tier": "gold"},
        )

        assert response.status == 200
        system = served.primary.attempts[0].messages[0]
        assert system == {"role": "system", "content": "You help gold customers with their orders."}


async def test_the_body_context_wins_over_a_header(tmp_path) -> None:
    async with serve(tmp_path) as served:
        body = {"prompt": "Hi", "context": {"tier": "platinum"}}
        await served.post(
            "/api/v1/agents/support/generate", body, **{"X-Bastion-Context-Tier": "gold"}
        )

        assert "platinum customers" in served.primary.attempts[0].messages[0]["content"]


REQUIRED = agents_section(
    support={"instructions": "You help {tier} customers in {region}.", "model": "chat"}
)


async def test_a_placeholder_the_context_does_not_fill_is_a_400_naming_the_key(tmp_path) -> None:
    async with serve(tmp_path, agents=REQUIRED) as served:
        body = {"prompt": "Hi", "thread_id": "t1", "resource_id": "alice", "run_id": "r1"}
        response = await served.post(
            "/api/v1/agents/support/generate", body, **{"x-bastion-context-region": "EU"}
        )
        error = await error_of(response)
        thread = await served.get("/api/v1/threads/t1", resource_id="alice")
        run = await served.get("/api/v1/runs/r1")

        assert response.status == 400
        assert (error["param"], error["code"]) == ("context.tier", "missing_context")
        assert "'tier'" in error["message"] and "x-bastion-context-tier" in error["message"]
        assert "{tier|...}" in error["message"]
        # Refused before anything ran: no model call, no thread, no run on record.
        assert served.primary.attempts == []
        assert (thread.status, run.status) == (404, 404)


async def test_a_stream_lacking_a_context_value_is_refused_before_the_stream_starts(
    tmp_path,
) -> None:
    async with serve(tmp_path, agents=REQUIRED) as served:
        response = await served.post("/api/v1/agents/support/stream", {"prompt": "Hi"})
        error = await error_of(response)

        assert response.status == 400
        assert response.content_type == "application/json"
        assert error["param"] == "context.tier"
        assert "'tier', 'region'" in error["message"]  # every missing key, in order


async def test_a_socket_turn_lacking_a_context_value_is_refused_and_the_socket_goes_on(
    tmp_path,
) -> None:
    async with serve(tmp_path, agents=REQUIRED) as served:
        ws = await served.client.ws_connect(
            "/api/v1/agents/support/ws", headers={**bearer(APP), "x-bastion-context-tier": "gold"}
        )
        await ws.send_json({"type": "generate", "prompt": "Hi"})
        refused = await ws.receive_json(timeout=5)
        await ws.send_json({"type": "generate", "prompt": "Hi", "context": {"region": "EU"}})
        answered = [await ws.receive_json(timeout=5)]
        while answered[-1]["type"] not in ("finish", "error"):
            answered.append(await ws.receive_json(timeout=5))
        await ws.close()

        assert (refused["type"], refused["code"], refused["field"]) == (
            "error",
            "missing_context",
            "context.region",
        )
        assert answered[-1]["type"] == "finish"
        system = served.primary.attempts[0].messages[0]["content"]
        assert system == "You help gold customers in EU."


async def test_a_placeholder_default_fills_in_for_a_missing_value_only(tmp_path) -> None:
    agents = agents_section(
        support={"instructions": "Tier {tier|standard}; notes: {notes|}.", "model": "chat"}
    )
    async with serve(tmp_path, agents=agents) as served:
        await served.post("/api/v1/agents/support/generate", {"prompt": "Hi"})
        await served.post(
            "/api/v1/agents/support/generate", {"prompt": "Hi", "context": {"tier": "gold"}}
        )

        first, second = (a.messages[0]["content"] for a in served.primary.attempts)
        assert first == "Tier standard; notes: ."
        assert second == "Tier gold; notes: ."


async def test_a_header_names_its_key_in_lower_case_with_dashes_as_underscores(tmp_path) -> None:
    agents = agents_section(support={"instructions": "Tier: {user_tier}.", "model": "chat"})
    async with serve(tmp_path, agents=agents) as served:
        await served.post(
            "/api/v1/agents/support/generate",
            {"prompt": "Hi"},
            **{"X-Bastion-Context-User-Tier": "gold"},
        )

        assert served.primary.attempts[0].messages[0]["content"] == "Tier: gold."


async def test_header_context_reaches_the_tools(tmp_path) -> None:
    async with serve(tmp_path) as served:
        served.primary.script(calls(("get_time", {})))

        response = await served.post(
            "/api/v1/agents/support/generate",
            {"prompt": "What time is it?", "context": {"tier": "gold"}},
            **{"x-bastion-context-timezone": "Asia/Tokyo"},
        )

        assert response.status == 200
        [sent] = tool_messages(served.primary.attempts[1].messages)
        answer = json.loads(sent["content"])
        assert answer["timezone"] == "Asia/Tokyo"
        assert answer["time"].endswith("+09:00")
        run = await (await served.get(f"/api/v1/runs/{(await response.json())['run_id']}")).json()
        assert run["steps"][1]["status"] == "ok"
