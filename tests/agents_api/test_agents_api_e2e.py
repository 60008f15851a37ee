"""End to end: `bastion serve` with agents in its config, in front of the simulated
fleet, each a subprocess on loopback. The fleet answers with tool calls; the tools are
the example module's, really called; what reaches the model is read from the fleet's
attempt log."""

from __future__ import annotations

import json
import time
import uuid
from typing import Any

import aiohttp
import httpx
from agents_api_support import ORDER_42, calls, parse_sse, tool_messages
from gateway_support import FleetProcess, GatewayProcess, Keys, bearer, wait_for

from bastion.testing import DEFAULT_TEXT, Fault

WHERE = "Where is order 42?"


def post(served: GatewayProcess, key: str, path: str, body: Any, **kwargs: Any) -> httpx.Response:
    return httpx.post(
        f"{served.url}/api/v1/agents/{path}", json=body, headers=bearer(key), timeout=20, **kwargs
    )


def in_flight(served: GatewayProcess, keys: Keys, endpoint: str) -> int:
    status = httpx.get(f"{served.url}/api/v1/status", headers=bearer(keys.admin)).json()
    return int(next(e["in_flight"] for e in status["endpoints"] if e["id"] == endpoint))


def new_id(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def test_generate_calls_the_tool_and_its_result_reaches_the_model(
    served: GatewayProcess, clean_fleet: FleetProcess, keys: Keys
) -> None:
    clean_fleet.script("primary", calls(("lookup_order", {"order_id": "42"})).to_dict())

    response = post(served, keys.app, "support/generate", {"prompt": WHERE})

    assert response.status_code == 200, response.text
    result = response.json()
    assert result["text"] == DEFAULT_TEXT
    assert [(s["kind"], s["name"]) for s in result["steps"]] == [
        ("model", "chat"),
        ("tool", "lookup_order"),
        ("model", "chat"),
    ]
    assert response.headers["x-bastion-run-id"] == result["run_id"]
    first, second = clean_fleet.attempts("primary")
    assert [t["function"]["name"] for t in first["body"]["tools"]] == ["lookup_order", "get_time"]
    call = second["messages"][-2]["tool_calls"][0]
    assert call["function"] == {"name": "lookup_order", "arguments": '{"order_id": "42"}'}
    [sent] = tool_messages(second["messages"])
    assert sent["tool_call_id"] == call["id"]
    assert json.loads(sent["content"]) == json.loads(ORDER_42)


def test_stream_sends_the_run_as_server_sent_events_ending_with_finish(
    served: GatewayProcess, clean_fleet: FleetProcess, keys: Keys
) -> None:
    clean_fleet.script("primary", calls(("lookup_order", {"order_id": "42"})).to_dict())

    response = post(served, keys.app, "support/stream", {"prompt": WHERE})

    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/event-stream")
    events = parse_sse(response.text)
    kinds = [kind for kind, _ in events]
    assert kinds[:4] == ["step_finish", "tool_call", "tool_result", "step_finish"]
    assert kinds[-2:] == ["step_finish", "finish"]
    assert set(kinds[4:-2]) == {"text_delta"}
    assert events[2][1]["name"] == "lookup_order"
    assert json.loads(events[2][1]["result"]) == json.loads(ORDER_42)
    finish = events[-1][1]
    assert "".join(data["text"] for kind, data in events if kind == "text_delta") == DEFAULT_TEXT
    assert finish["text"] == DEFAULT_TEXT
    assert finish["run_id"] == response.headers["x-bastion-run-id"]


async def test_a_websocket_serves_two_turns_on_one_thread_and_the_second_sees_the_first(
    served: GatewayProcess, clean_fleet: FleetProcess, keys: Keys
) -> None:
    clean_fleet.script("primary", calls(("lookup_order", {"order_id": "42"})).to_dict())
    thread = {"thread_id": new_id("ws"), "resource_id": "user-1"}
    url = f"{served.url}/api/v1/agents/support/ws"

    async with (
        aiohttp.ClientSession() as session,
        session.ws_connect(url, headers=bearer(keys.app)) as ws,
    ):
        turns = []
        for prompt in (WHERE, "And when will it arrive?"):
            await ws.send_json({"type": "generate", "prompt": prompt, **thread})
            turn = []
            while not turn or turn[-1]["type"] not in ("finish", "error"):
                turn.append(await ws.receive_json(timeout=20))
            turns.append(turn)

    first, second = (turn[-1] for turn in turns)
    assert first["type"] == second["type"] == "finish", (first, second)
    assert first["run_id"] != second["run_id"]
    assert "tool_result" in [m["type"] for m in turns[0]]
    last = clean_fleet.attempts("primary")[-1]["messages"]
    assert [m["role"] for m in last] == ["system", "user", "assistant", "tool", "assistant", "user"]
    assert last[1]["content"] == WHERE
    assert last[-1]["content"] == "And when will it arrive?"


def test_memory_gives_the_second_turn_the_first_turns_messages(
    served: GatewayProcess, clean_fleet: FleetProcess, keys: Keys
) -> None:
    thread = {"thread_id": new_id("mem"), "resource_id": "user-2"}
    first = post(served, keys.app, "support/generate", {"prompt": "Hello", **thread})
    second = post(served, keys.app, "support/generate", {"prompt": "Still there?", **thread})

    assert first.status_code == second.status_code == 200
    sent = clean_fleet.attempts("primary")[-1]["messages"]
    assert [(m["role"], m["content"]) for m in sent[1:]] == [
        ("user", "Hello"),
        ("assistant", DEFAULT_TEXT),
        ("user", "Still there?"),
    ]
    stored = httpx.get(
        f"{served.url}/api/v1/threads/{thread['thread_id']}",
        params={"resource_id": "user-2"},
        headers=bearer(keys.admin),
    ).json()
    assert stored["version"] == 2
    assert [m["content"] for m in stored["messages"]] == [
        "Hello",
        DEFAULT_TEXT,
        "Still there?",
        DEFAULT_TEXT,
    ]


def test_a_primary_failing_between_tool_steps_is_finished_by_the_fallback(
    served: GatewayProcess, clean_fleet: FleetProcess, keys: Keys
) -> None:
    clean_fleet.script(
        "primary",
        calls(("lookup_order", {"order_id": "42"})).to_dict(),
        Fault.status(500).to_dict(),
    )

    response = post(served, keys.app, "failover/generate", {"prompt": WHERE})

    assert response.status_code == 200, response.text
    result = response.json()
    assert result["text"] == DEFAULT_TEXT
    models = [s for s in result["steps"] if s["kind"] == "model"]
    assert [s["output"]["endpoint"] for s in models] == ["primary", "secondary"]
    assert clean_fleet.outcomes("primary") == ["ok", "status"]  # retries: 0 on primary
    [fallback] = clean_fleet.attempts("secondary")
    [sent] = tool_messages(fallback["messages"])
    assert json.loads(sent["content"]) == json.loads(ORDER_42)


def test_the_stream_tells_when_the_fallback_takes_over(
    served: GatewayProcess, clean_fleet: FleetProcess, keys: Keys
) -> None:
    clean_fleet.script(
        "primary",
        calls(("lookup_order", {"order_id": "42"})).to_dict(),
        Fault.status(500).to_dict(),
    )

    events = parse_sse(post(served, keys.app, "failover/stream", {"prompt": WHERE}).text)

    switches = [data for kind, data in events if kind == "model_switch"]
    assert switches == [{"from_endpoint": "primary", "to_endpoint": "secondary", "step": 2}]
    assert events[-1][0] == "finish"


def test_a_client_that_disconnects_cancels_the_run(
    served: GatewayProcess, clean_fleet: FleetProcess, keys: Keys
) -> None:
    clean_fleet.set_default("primary", Fault.hang().to_dict())
    url = f"{served.url}/api/v1/agents/failover/stream"

    with (
        httpx.Client(timeout=10) as client,
        client.stream("POST", url, json={"prompt": WHERE}, headers=bearer(keys.app)) as response,
    ):
        run_id = response.headers["x-bastion-run-id"]
        assert wait_for(lambda: in_flight(served, keys, "primary") == 1)
    # Leaving the block closed the connection mid-run.

    assert wait_for(lambda: clean_fleet.outcomes("primary") == ["client_disconnected"], 5)

    def run() -> dict[str, Any]:
        return httpx.get(f"{served.url}/api/v1/runs/{run_id}", headers=bearer(keys.admin)).json()

    assert wait_for(lambda: run().get("status") == "error", 5)
    assert run()["error"] == "cancelled"
    time.sleep(0.1)
    assert clean_fleet.attempts("secondary") == []  # cancelled, not failed over


def test_a_key_uses_only_the_agents_in_its_scope(served: GatewayProcess, keys: Keys) -> None:
    listed = httpx.get(f"{served.url}/api/v1/agents", headers=bearer(keys.other)).json()
    refused = post(served, keys.other, "failover/generate", {"prompt": WHERE})

    assert [a["name"] for a in listed["data"]] == ["support"]
    assert refused.status_code == 403
    assert refused.json()["error"]["code"] == "agent_not_allowed"
