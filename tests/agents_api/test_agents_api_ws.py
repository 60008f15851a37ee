"""The agent WebSocket: many turns on one socket; a message that cannot be used is
answered with an error naming its field, and the socket stays open."""

from __future__ import annotations

import asyncio
from typing import Any

import aiohttp
import pytest
from agents_api_support import ADMIN, APP, bearer, calls, error_of, serve

from bastion.testing import DEFAULT_TEXT, Fault

PATH = "/api/v1/agents/support/ws"


async def turn(ws: Any) -> list[dict[str, Any]]:
    """Messages up to and including the turn's `finish` or `error`."""
    messages: list[dict[str, Any]] = []
    while not messages or messages[-1]["type"] not in ("finish", "error"):
        messages.append(await ws.receive_json(timeout=5))
    return messages


async def connect(served: Any, **headers: str) -> Any:
    return await served.client.ws_connect(PATH, headers={**bearer(APP), **headers})


@pytest.mark.parametrize(
    ("message", "field", "code"),
    [
        ("{not json", None, "invalid_json"),
        ("[1, 2]", None, "invalid_json"),
        ('{"type": "shout"}', "type", "invalid_value"),
        ('{"type": "generate"}', "messages", "invalid_value"),
        ('{"type": "generate", "messages": [{"role": "robot", "content": "x"}]}',
         "messages[0].role", "invalid_value"),
        ('{"type": "generate", "prompt": "x", "thread": "t1"}', "thread", "invalid_value"),
        ('{"type": "cancel"}', "type", "invalid_value"),
    ],
)  # fmt: skip
async def test_a_bad_message_is_answered_with_an_error_and_the_socket_stays_open(
    tmp_path, message, field, code
) -> None:
    async with serve(tmp_path) as served:
        ws = await connect(served)
        await ws.send_str(message)
        error = await ws.receive_json(timeout=5)
        await ws.send_json({"type": "ping"})
        pong = await ws.receive_json(timeout=5)
        await ws.close()

        assert (error["type"], error["field"], error["code"]) == ("error", field, code)
        assert pong == {"type": "pong"}
        assert served.primary.attempts == []


async def test_a_binary_message_is_refused(tmp_path) -> None:
    async with serve(tmp_path) as served:
        ws = await connect(served)
        await ws.send_bytes(b'{"type": "ping"}')
        error = await ws.receive_json(timeout=5)
        await ws.close()

        assert (error["type"], error["code"]) == ("error", "invalid_json")


async def test_turns_stream_events_and_end_with_finish(tmp_path) -> None:
    async with serve(tmp_path) as served:
        served.primary.script(calls(("lookup_order", {"order_id": "42"})))
        ws = await connect(served)
        await ws.send_json({"type": "generate", "prompt": "Where is 42?"})
        first = await turn(ws)
        await ws.send_json({"type": "generate", "messages": [{"role": "user", "content": "Hi"}]})
        second = await turn(ws)
        await ws.close()

        assert [m["type"] for m in first[:4]] == ["step_finish", "tool_call", "tool_result",
                                                  "step_finish"]  # fmt: skip
        assert first[-1]["type"] == second[-1]["type"] == "finish"
        assert {m["run_id"] for m in first} == {first[-1]["run_id"]}
        assert "".join(m["text"] for m in second if m["type"] == "text_delta") == DEFAULT_TEXT


async def test_a_turn_on_another_resources_thread_is_refused_and_the_socket_goes_on(
    tmp_path,
) -> None:
    async with serve(tmp_path) as served:
        ws = await connect(served)
        owned = {"type": "generate", "prompt": "Hi", "thread_id": "t1", "resource_id": "alice"}
        await ws.send_json(owned)
        await turn(ws)
        await ws.send_json({**owned, "resource_id": "bob"})
        [refused] = await turn(ws)
        await ws.send_json(owned)
        again = await turn(ws)
        await ws.close()

        assert (refused["code"], refused["field"], refused["status"]) == (
            "wrong_resource",
            "resource_id",
            403,
        )
        assert again[-1]["type"] == "finish"
        thread = await (await served.get("/api/v1/threads/t1", resource_id="alice")).json()
        assert thread["version"] == 2


async def test_a_second_turn_while_one_runs_is_refused(tmp_path) -> None:
    async with serve(tmp_path) as served:
        served.primary.script(Fault.ok(latency=0.3))
        ws = await connect(served)
        await ws.send_json({"type": "generate", "prompt": "Slow"})
        await ws.send_json({"type": "generate", "prompt": "Impatient"})
        refused = await ws.receive_json(timeout=5)
        finished = await turn(ws)
        await ws.close()

        assert (refused["type"], refused["code"]) == ("error", "turn_running")
        assert finished[-1]["type"] == "finish"
        assert len(served.primary.attempts) == 1


async def test_cancel_stops_the_running_turn(tmp_path) -> None:
    async with serve(tmp_path) as served:
        served.primary.set_default(Fault.hang())
        ws = await connect(served)
        await ws.send_json({"type": "generate", "prompt": "Hang", "run_id": "r-cancel"})
        await asyncio.sleep(0.1)
        await ws.send_json({"type": "cancel"})
        cancelled = await ws.receive_json(timeout=5)
        await ws.send_json({"type": "ping"})
        pong = await ws.receive_json(timeout=5)
        await ws.close()

        assert (cancelled["type"], cancelled["code"], cancelled["run_id"]) == (
            "error",
            "cancelled",
            "r-cancel",
        )
        assert pong == {"type": "pong"}
        run = await (await served.get("/api/v1/runs/r-cancel")).json()
        assert (run["status"], run["error"]) == ("error", "cancelled")


async def test_closing_the_socket_cancels_the_running_turn(tmp_path) -> None:
    async with serve(tmp_path) as served:
        served.primary.set_default(Fault.hang())
        ws = await connect(served)
        await ws.send_json({"type": "generate", "prompt": "Hang", "run_id": "r-gone"})
        await asyncio.sleep(0.1)
        await ws.close()

        async def cancelled() -> bool:
            run = await (await served.get("/api/v1/runs/r-gone")).json()
            return bool(run["status"] == "error")

        for _ in range(100):
            if await cancelled():
                break
            await asyncio.sleep(0.02)
        assert await cancelled()
        assert served.secondary.attempts == []


async def test_the_upgrade_headers_context_serves_every_turn_and_a_turns_own_wins(
    tmp_path,
) -> None:
    async with serve(tmp_path) as served:
        ws = await connect(served, **{"x-bastion-context-tier": "gold"})
        await ws.send_json({"type": "generate", "prompt": "Hi"})
        await turn(ws)
        await ws.send_json({"type": "generate", "prompt": "Hi", "context": {"tier": "silver"}})
        await turn(ws)
        await ws.close()

        systems = [a.messages[0]["content"] for a in served.primary.attempts]
        assert systems == [
            "You help gold customers with their orders.",
            "You help silver customers with their orders.",
        ]


async def test_a_message_over_the_size_bound_closes_the_socket_with_1009(tmp_path) -> None:
    async with serve(tmp_path, server={"max_body": 2048}) as served:
        ws = await connect(served)
        await ws.send_json({"type": "generate", "prompt": "x" * 4096})
        message = await ws.receive(timeout=5)

        assert message.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED)
        assert ws.close_code == aiohttp.WSCloseCode.MESSAGE_TOO_BIG
        assert served.primary.attempts == []


async def test_an_unknown_agent_is_a_404_before_the_upgrade(tmp_path) -> None:
    async with serve(tmp_path) as served:
        response = await served.client.get("/api/v1/agents/nobody/ws", headers=bearer(ADMIN))

        assert response.status == 404
        assert (await error_of(response))["code"] == "agent_not_found"


async def test_a_plain_get_is_told_to_upgrade(tmp_path) -> None:
    async with serve(tmp_path) as served:
        response = await served.client.get(PATH, headers=bearer(APP))

        assert response.status == 400
        assert (await error_of(response))["code"] == "websocket_required"


async def test_shutdown_closes_an_idle_socket_and_a_busy_one_after_its_turn(tmp_path) -> None:
    async with serve(tmp_path) as served:
        served.primary.script(Fault.ok(latency=0.3))
        idle = await connect(served)
        busy = await connect(served)
        await busy.send_json({"type": "generate", "prompt": "Slow"})
        await asyncio.sleep(0.1)

        await served.client.app.shutdown()
        idle_closed = await idle.receive(timeout=5)
        finished = await turn(busy)
        busy_closed = await busy.receive(timeout=5)

        assert idle_closed.type is aiohttp.WSMsgType.CLOSE
        assert idle_closed.data == aiohttp.WSCloseCode.GOING_AWAY
        assert finished[-1]["type"] == "finish"
        assert busy_closed.type is aiohttp.WSMsgType.CLOSE
        assert busy_closed.data == aiohttp.WSCloseCode.GOING_AWAY
