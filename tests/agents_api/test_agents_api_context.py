"""Runtime context from the body and from `x-bastion-context-*` headers reaches the
instructions and the tools; the body wins."""

from __future__ import annotations

import json

from agents_api_support import agents_section, calls, serve, tool_messages


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


async def test_a_placeholder_the_context_does_not_fill_stays_as_written(tmp_path) -> None:
    async with serve(tmp_path) as served:
        await served.post("/api/v1/agents/support/generate", {"prompt": "Hi"})

        assert "You help {tier} customers" in served.primary.attempts[0].messages[0]["content"]


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
