"""A config reload rebuilds the agents against the new router; one that cannot work is
refused naming the field, and changes nothing."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import yaml
from agents_api_support import ADMIN, agents_section, bearer, config_for, error_of, serve

from bastion.config import load_config
from bastion.server.gateway import Gateway
from bastion.testing import Fault, Fleet


async def put_config(served: Any, config: dict[str, Any]) -> Any:
    return await served.client.put("/api/v1/config", data=json.dumps(config), headers=bearer(ADMIN))


def with_instructions(config: dict[str, Any], text: str) -> dict[str, Any]:
    support = {**config["agents"]["support"], "instructions": text}
    return {**config, "agents": agents_section(support=support)}


async def test_a_reload_rebuilds_the_agents_and_threads_carry_on(tmp_path) -> None:
    async with serve(tmp_path) as served:
        thread = {"thread_id": "t1", "resource_id": "alice"}
        await served.post("/api/v1/agents/support/generate", {"prompt": "Hi", **thread})

        reloaded = await put_config(served, with_instructions(served.config, "Be terse."))
        response = await served.post("/api/v1/agents/support/generate", {"prompt": "Yo", **thread})

        assert reloaded.status == 200
        assert response.status == 200
        sent = served.primary.attempts[-1].messages
        assert sent[0] == {"role": "system", "content": "Be terse."}
        assert [m["content"] for m in sent[1:]][::2] == ["Hi", "Yo"]
        agent = served.gateway.agents.get("support")
        assert agent is not None and agent.router is served.gateway.router


async def test_a_bad_tool_path_is_refused_naming_the_field_and_nothing_changes(tmp_path) -> None:
    async with serve(tmp_path) as served:
        router, agents = served.gateway.router, served.gateway.agents.agents
        support = {**served.config["agents"]["support"]}
        support["tools"] = ["bastion.demo.tools:lookup_order", "bastion.demo.tools:nope"]
        config = {
            **with_instructions(served.config, "New"),
            "agents": agents_section(support=support),
        }

        response = await put_config(served, config)
        after = await served.post("/api/v1/agents/support/generate", {"prompt": "Hi"})

        assert response.status == 400
        message = (await error_of(response))["message"]
        assert "agents.support.tools[1]" in message and "nope" in message
        assert served.gateway.router is router
        assert served.gateway.agents.agents is agents
        assert after.status == 200
        assert "You help standard" in served.primary.attempts[-1].messages[0]["content"]


async def test_a_run_in_flight_finishes_across_a_reload(tmp_path) -> None:
    async with serve(tmp_path) as served:
        served.primary.script(Fault.ok(latency=0.3))
        running = asyncio.create_task(
            served.post("/api/v1/agents/support/generate", {"prompt": "Slow"})
        )
        await asyncio.sleep(0.1)

        reloaded = await put_config(served, with_instructions(served.config, "Be terse."))
        response = await running

        assert reloaded.status == 200
        assert response.status == 200
        assert (await response.json())["steps"][0]["output"]["endpoint"] == "primary"


async def test_agents_added_by_a_reload_are_served_and_removed_ones_are_gone(tmp_path) -> None:
    # Keys may only name agents that exist: an open gateway, for this one.
    async with serve(tmp_path, agents={}, auth=None) as served:
        before = await served.post("/api/v1/agents/support/generate", {"prompt": "Hi"}, ADMIN)
        assert served.gateway.agents.store is None

        added = await put_config(served, {**served.config, "agents": agents_section()})
        during = await served.post("/api/v1/agents/support/generate", {"prompt": "Hi"}, ADMIN)
        removed = await put_config(served, {**served.config, "agents": {}})
        after = await served.post("/api/v1/agents/support/generate", {"prompt": "Hi"}, ADMIN)

        assert (before.status, added.status, during.status, removed.status, after.status) == (
            404,
            200,
            200,
            200,
            404,
        )


async def test_a_sighup_reload_with_a_bad_tool_path_changes_nothing(tmp_path) -> None:
    async with Fleet(["primary", "secondary"]) as fleet:
        config = config_for(fleet.urls(), tmp_path / "memory.db")
        source = tmp_path / "bastion.yaml"
        source.write_text(yaml.safe_dump(config))
        gateway = Gateway(load_config(source), source=source)
        await gateway.start()
        try:
            agents = gateway.agents.agents
            config["agents"]["support"]["tools"] = ["bastion.demo.missing:tool"]
            source.write_text(yaml.safe_dump(config))

            await gateway.reload_from_source()

            assert gateway.agents.agents is agents
        finally:
            await gateway.close()
