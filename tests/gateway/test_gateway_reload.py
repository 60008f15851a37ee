"""Config reloads under steady traffic lose no request, whether by SIGHUP after the
file changed or by `PUT /api/v1/config`; a bad config changes nothing."""

from __future__ import annotations

import asyncio
import json
import signal
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import httpx
import yaml
from gateway_support import (
    QUESTION,
    FleetProcess,
    GatewayProcess,
    Keys,
    MakeGateway,
    bearer,
    gateway_config,
    wait_for,
)

from bastion.testing import DEFAULT_TEXT

CONCURRENCY = 8
TRAFFIC_FOR = 2.0
ORDERS = (["secondary", "primary"], ["primary", "secondary"], ["secondary", "primary"])


@dataclass(frozen=True)
class Outcome:
    status: int
    endpoint: str
    complete: bool
    stream: bool


async def ask(client: httpx.AsyncClient, stream: bool) -> Outcome:
    body = {"model": "chat", "messages": QUESTION, "stream": stream}
    if not stream:
        response = await client.post("/v1/chat/completions", json=body)
        text = response.json()["choices"][0]["message"]["content"] if response.is_success else ""
        return Outcome(
            response.status_code,
            response.headers.get("x-bastion-endpoint", ""),
            text == DEFAULT_TEXT,
            False,
        )
    async with client.stream("POST", "/v1/chat/completions", json=body) as response:
        parts, done = [], False
        async for line in response.aiter_lines():
            if line == "data: [DONE]":
                done = True
            elif line.startswith("data: "):
                chunk = json.loads(line.removeprefix("data: "))
                parts.extend(c["delta"].get("content") or "" for c in chunk.get("choices", []))
        return Outcome(
            response.status_code,
            response.headers.get("x-bastion-endpoint", ""),
            done and "".join(parts) == DEFAULT_TEXT,
            True,
        )


async def under_traffic(
    server: GatewayProcess, keys: Keys, reload: Callable[[list[str]], Awaitable[None]]
) -> list[Outcome]:
    """Run CONCURRENCY request loops (streaming and not, in turn) for TRAFFIC_FOR
    seconds while `reload` is called with each of ORDERS, spread over that time."""
    outcomes: list[Outcome] = []
    stop_at = time.monotonic() + TRAFFIC_FOR

    async def loop(client: httpx.AsyncClient, worker: int) -> None:
        n = worker
        while time.monotonic() < stop_at:
            outcomes.append(await ask(client, stream=n % 2 == 1))
            n += 1

    async def reloads() -> None:
        for order in ORDERS:
            await asyncio.sleep(TRAFFIC_FOR / (len(ORDERS) + 1))
            await reload(order)

    limits = httpx.Limits(max_connections=CONCURRENCY)
    async with httpx.AsyncClient(
        base_url=server.url, headers=bearer(keys.app), timeout=10, limits=limits
    ) as client:
        await asyncio.gather(reloads(), *(loop(client, w) for w in range(CONCURRENCY)))
    return outcomes


def config_with(fleet: FleetProcess, order: list[str]) -> dict[str, Any]:
    return gateway_config(fleet, models={"chat": {"targets": order}})


def assert_no_request_lost(outcomes: list[Outcome]) -> None:
    assert len(outcomes) > 50, "too little traffic to tell anything"
    lost = [o for o in outcomes if o.status != 200 or not o.complete]
    assert lost == [], f"{len(lost)} of {len(outcomes)} requests failed or were cut: {lost[:5]}"
    # Both orders served: the reloads took effect while the traffic ran.
    assert {o.endpoint for o in outcomes} == {"primary", "secondary"}
    assert {o.stream for o in outcomes} == {False, True}


def logged(server: GatewayProcess, text: str, count: int = 1) -> bool:
    return server.logs().count(text) >= count


async def until_logged(server: GatewayProcess, text: str, count: int) -> None:
    found = await asyncio.to_thread(wait_for, lambda: logged(server, text, count))
    assert found, f"{text!r} was not logged {count} times"


def endpoint_now(server: GatewayProcess, keys: Keys) -> str:
    response = httpx.post(
        f"{server.url}/v1/chat/completions",
        json={"model": "chat", "messages": QUESTION},
        headers=bearer(keys.app),
    )
    assert response.status_code == 200
    return response.headers["x-bastion-endpoint"]


async def test_sighup_reloads_under_traffic_lose_no_request(
    make_gateway: MakeGateway, fleet: FleetProcess, keys: Keys
) -> None:
    server = make_gateway()
    reloads = 0

    async def reload(order: list[str]) -> None:
        nonlocal reloads
        server.write_config(config_with(fleet, order))
        server.signal(signal.SIGHUP)
        reloads += 1
        await until_logged(server, "config reloaded", reloads)

    assert_no_request_lost(await under_traffic(server, keys, reload))
    assert endpoint_now(server, keys) == ORDERS[-1][0]


async def test_put_config_under_traffic_loses_no_request(
    make_gateway: MakeGateway, fleet: FleetProcess, keys: Keys
) -> None:
    server = make_gateway()

    async def reload(order: list[str]) -> None:
        async with httpx.AsyncClient(base_url=server.url, headers=bearer(keys.admin)) as admin:
            response = await admin.put(
                "/api/v1/config",
                content=yaml.safe_dump(config_with(fleet, order)),
                headers={"Content-Type": "application/yaml"},
            )
        assert response.status_code == 200, response.text
        assert response.json()["status"] == "reloaded"

    assert_no_request_lost(await under_traffic(server, keys, reload))
    assert endpoint_now(server, keys) == ORDERS[-1][0]


def test_a_bad_config_changes_nothing_and_names_no_secret(
    make_gateway: MakeGateway, fleet: FleetProcess, keys: Keys
) -> None:
    server = make_gateway()
    bad = config_with(fleet, ["secondary", "nowhere"])
    response = httpx.put(
        f"{server.url}/api/v1/config",
        content=yaml.safe_dump(bad),
        headers={**bearer(keys.admin), "Content-Type": "application/yaml"},
    )
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["code"] == "invalid_config"
    assert "nowhere" in error["message"]
    server.write_config(bad)
    server.signal(signal.SIGHUP)
    assert wait_for(lambda: logged(server, "config reload refused"))
    assert endpoint_now(server, keys) == "primary"
    logs = server.logs()
    assert not any(secret in logs or secret in response.text for secret in keys.values())
