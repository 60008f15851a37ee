"""Header values that are not UTF-8: a context header is a 400 naming it, a key header
a 401, a header that only describes the request (User-Agent) changes nothing; never a
500, never a traceback in the log."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest
from gateway_support import (
    AGENT,
    QUESTION,
    FleetProcess,
    GatewayProcess,
    Keys,
    MakeGateway,
    agent_sections,
    bearer,
    gateway_config,
)

NOT_UTF8 = b"gold \xff\xfe"
CONTEXT = "x-bastion-context-tier"


@pytest.fixture
def server(make_gateway: MakeGateway, fleet: FleetProcess, tmp_path: Path) -> GatewayProcess:
    return make_gateway(gateway_config(fleet, **agent_sections(tmp_path / "memory.db")))


def send(
    server: GatewayProcess, method: str, path: str, headers: dict[str, str | bytes], **kw: object
) -> httpx.Response:
    return httpx.request(method, f"{server.url}{path}", headers=headers, timeout=10, **kw)  # type: ignore[arg-type]


@pytest.mark.parametrize("route", ["generate", "stream", "ws"])
def test_a_context_header_that_is_not_utf8_is_a_400_naming_it(
    server: GatewayProcess, keys: Keys, fleet: FleetProcess, route: str
) -> None:
    headers: dict[str, str | bytes] = {**bearer(keys.admin), CONTEXT: NOT_UTF8}
    if route == "ws":
        headers |= {"Connection": "Upgrade", "Upgrade": "websocket", "Sec-WebSocket-Version": "13",
                    "Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ=="}  # fmt: skip
        response = send(server, "GET", f"/api/v1/agents/{AGENT}/ws", headers)
    else:
        path = f"/api/v1/agents/{AGENT}/{route}"
        response = send(server, "POST", path, headers, json={"prompt": "Hi"})
    assert response.status_code == 400, response.text
    error = response.json()["error"]
    assert (error["param"], error["code"]) == (CONTEXT, "invalid_header")
    assert CONTEXT in error["message"]
    assert fleet.attempts("primary") == []
    assert "Traceback" not in server.logs()


@pytest.mark.parametrize("header", ["Authorization", "x-api-key"])
def test_a_key_header_that_is_not_utf8_is_a_401(
    server: GatewayProcess, keys: Keys, header: str
) -> None:
    value = b"Bearer " + NOT_UTF8 if header == "Authorization" else NOT_UTF8
    response = send(server, "GET", "/v1/models", {header: value})
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "invalid_api_key"
    assert "Traceback" not in server.logs()


def test_a_user_agent_that_is_not_utf8_changes_nothing(server: GatewayProcess, keys: Keys) -> None:
    headers: dict[str, str | bytes] = {**bearer(keys.admin), "User-Agent": NOT_UTF8}
    response = send(
        server,
        "POST",
        "/v1/chat/completions",
        headers,
        json={"model": "chat", "messages": QUESTION},
    )
    assert response.status_code == 200, response.text
    assert "Traceback" not in server.logs()
