"""Scripting an upstream over HTTP, and the health-probe route."""

from __future__ import annotations

import asyncio

from bastion.testing import AttemptLog, Fault


async def control(http, up, method: str, path: str, **kwargs):
    async with http.request(method, up.url + path, **kwargs) as response:
        return response.status, await response.json()


async def test_put_default_sets_the_standing_fault(up, http, chat) -> None:
    status, _ = await control(http, up, "PUT", "/_fleet/default", json=Fault.status(503).to_dict())
    assert status == 200
    assert (await chat(up)).status == 503


async def test_put_default_can_name_a_model(up, http, chat) -> None:
    body = {"fault": {"kind": "context_length"}, "model": "small"}
    await control(http, up, "PUT", "/_fleet/default", json=body)
    assert (await chat(up, model="small")).status == 400
    assert (await chat(up, model="big")).status == 200


async def test_post_script_queues_a_list_in_order(up, http, chat) -> None:
    faults = [Fault.status(500).to_dict(), Fault.status(429).to_dict()]
    status, body = await control(http, up, "POST", "/_fleet/script", json=faults)
    assert (status, body) == (200, {"queued": {"*": 2}})
    assert [(await chat(up)).status for _ in range(3)] == [500, 429, 200]


async def test_post_script_can_name_a_model(up, http, chat) -> None:
    body = {"faults": [{"kind": "status", "code": 502}], "model": "big"}
    await control(http, up, "POST", "/_fleet/script", json=body)
    assert (await chat(up, model="small")).status == 200
    assert (await chat(up, model="big")).status == 502


async def test_an_unknown_fault_kind_is_a_400_naming_the_field(up, http) -> None:
    status, body = await control(http, up, "POST", "/_fleet/script", json=[{"kind": "boom"}])
    assert status == 400
    assert body["error"]["field"] == "faults[0].kind"
    assert "boom" in body["error"]["message"]


async def test_a_bad_parameter_is_a_400_naming_the_field(up, http) -> None:
    bad = {"kind": "cut", "after_chars": "ten"}
    status, body = await control(http, up, "PUT", "/_fleet/default", json=bad)
    assert status == 400
    assert body["error"]["field"] == "after_chars"


async def test_an_unknown_envelope_field_is_a_400_naming_it(up, http) -> None:
    body = {"fault": {"kind": "ok"}, "modle": "x"}
    status, answer = await control(http, up, "PUT", "/_fleet/default", json=body)
    assert (status, answer["error"]["field"]) == (400, "modle")


async def test_a_control_body_that_is_not_json_is_a_400(up, http) -> None:
    status, body = await control(http, up, "PUT", "/_fleet/default", data=b"{")
    assert (status, body["error"]["field"]) == (400, "body")


async def test_get_attempts_returns_the_log_as_json(up, http, chat) -> None:
    await chat(up, stream=True)
    status, body = await control(http, up, "GET", "/_fleet/attempts")
    assert status == 200
    assert body["upstream"] == "primary"
    assert [AttemptLog.from_dict(a) for a in body["attempts"]] == up.attempts


async def test_delete_attempts_forgets_them(up, http, chat) -> None:
    await chat(up)
    await control(http, up, "DELETE", "/_fleet/attempts")
    assert up.attempts == []


async def test_delete_script_and_heal_restore_health(up, http, chat) -> None:
    up.script(Fault.reset())
    up.set_default(Fault.status(503))
    await control(http, up, "DELETE", "/_fleet/script")
    assert up.queued == {}
    await control(http, up, "POST", "/_fleet/heal")
    assert (await chat(up)).status == 200


async def test_probes_are_counted_apart_from_attempts(up, http) -> None:
    async with http.get(up.base_url + "/models") as response:
        body = await response.json()
    assert body["object"] == "list"
    assert up.probes == 1
    assert up.attempts == []


async def test_probes_follow_the_standing_fault_but_not_queued_ones(up, http) -> None:
    up.script(Fault.status(500))
    async with http.get(up.base_url + "/models") as response:
        assert response.status == 200
    up.set_default(Fault.status(503))
    async with http.get(up.base_url + "/models") as response:
        assert response.status == 503


async def test_probes_follow_flapping(up, http) -> None:
    up.set_default(Fault.flapping(0.15))
    async with http.get(up.base_url + "/models") as response:
        down = response.status
    await asyncio.sleep(0.2)
    async with http.get(up.base_url + "/models") as response:
        assert (down, response.status) == (503, 200)
