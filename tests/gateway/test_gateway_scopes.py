"""Key scopes over HTTP, least privilege: a key naming either scope (`models`,
`agents`) may use only what it names; a key naming neither may use everything."""

from __future__ import annotations

import secrets
from collections.abc import Iterator
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

from bastion.testing import DEFAULT_TEXT

RUN = {"prompt": "Tell me about the fox."}


@pytest.fixture(scope="module")
def open_key() -> str:
    return f"open-{secrets.token_hex(12)}"


@pytest.fixture
def scoped(
    make_gateway: MakeGateway,
    fleet: FleetProcess,
    keys: Keys,
    open_key: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> Iterator[GatewayProcess]:
    """`app` names only models, `agents` only agents, `open` neither."""
    monkeypatch.setenv("BASTION_OPEN_KEY", open_key)
    config = gateway_config(
        fleet,
        **agent_sections(tmp_path / "memory.db"),
        auth={
            "keys": [
                {"key": "${BASTION_APP_KEY}", "name": "app", "models": ["chat"]},
                {"key": "${BASTION_OTHER_KEY}", "name": "agents", "agents": [AGENT]},
                {"key": "${BASTION_OPEN_KEY}", "name": "open"},
            ]
        },
    )
    yield make_gateway(config)


def get(server: GatewayProcess, path: str, key: str) -> httpx.Response:
    return httpx.get(f"{server.url}{path}", headers=bearer(key), timeout=10)


def post(server: GatewayProcess, path: str, key: str, body: object) -> httpx.Response:
    return httpx.post(f"{server.url}{path}", headers=bearer(key), json=body, timeout=10)


def agent_names(server: GatewayProcess, key: str) -> list[str]:
    response = get(server, "/api/v1/agents", key)
    assert response.status_code == 200, response.text
    return [a["name"] for a in response.json()["data"]]


def model_ids(server: GatewayProcess, key: str) -> list[str]:
    response = get(server, "/v1/models", key)
    assert response.status_code == 200, response.text
    return [m["id"] for m in response.json()["data"]]


def test_a_key_naming_only_models_may_use_no_agent(
    scoped: GatewayProcess, keys: Keys, fleet: FleetProcess
) -> None:
    assert agent_names(scoped, keys.app) == []
    for route in ("generate", "stream"):
        response = post(scoped, f"/api/v1/agents/{AGENT}/{route}", keys.app, RUN)
        assert response.status_code == 403, response.text
        assert response.json()["error"]["code"] == "agent_not_allowed"
    socket = get(scoped, f"/api/v1/agents/{AGENT}/ws", keys.app)
    assert socket.status_code == 403
    assert socket.json()["error"]["code"] == "agent_not_allowed"
    assert fleet.attempts("primary") == []
    # What it names, it may still use.
    answer = post(scoped, "/v1/chat/completions", keys.app, {"model": "chat", "messages": QUESTION})
    assert answer.status_code == 200, answer.text


def test_a_key_naming_only_agents_may_use_no_model_directly(
    scoped: GatewayProcess, keys: Keys
) -> None:
    assert model_ids(scoped, keys.other) == []
    refused = post(
        scoped, "/v1/chat/completions", keys.other, {"model": "chat", "messages": QUESTION}
    )
    assert refused.status_code == 403
    assert refused.json()["error"]["code"] == "model_not_allowed"
    assert get(scoped, "/v1/models/chat", keys.other).status_code == 404
    # Its agent runs, on the models the agent's config names.
    assert agent_names(scoped, keys.other) == [AGENT]
    run = post(scoped, f"/api/v1/agents/{AGENT}/generate", keys.other, RUN)
    assert run.status_code == 200, run.text
    assert run.json()["text"] == DEFAULT_TEXT


def test_a_key_naming_no_scope_may_use_everything(scoped: GatewayProcess, open_key: str) -> None:
    assert agent_names(scoped, open_key) == [AGENT]
    assert model_ids(scoped, open_key) == ["chat", "primary", "secondary"]
    run = post(scoped, f"/api/v1/agents/{AGENT}/generate", open_key, RUN)
    assert run.status_code == 200, run.text
    answer = post(
        scoped, "/v1/chat/completions", open_key, {"model": "primary", "messages": QUESTION}
    )
    assert answer.status_code == 200, answer.text
