"""A key reaches what its scopes name and nothing through a side door: a key scoped to
models cannot run agents (which call models of their own), a key scoped to agents
cannot call models directly. Refusals are 403s in the OpenAI error shape."""

from __future__ import annotations

import httpx
import pytest
from gateway_support import QUESTION, GatewayProcess, Keys, bearer
from security_support import error_of

RUN = {"prompt": "Where is order 42?", "context": {"tier": "gold"}}


@pytest.mark.parametrize("who", ["app", "other"])
def test_a_key_scoped_to_models_sees_no_agents(
    gateway: GatewayProcess, keys: Keys, who: str
) -> None:
    key = getattr(keys, who)
    listed = httpx.get(f"{gateway.url}/api/v1/agents", headers=bearer(key), timeout=5)
    assert listed.status_code in (200, 403)
    if listed.status_code == 200:
        assert listed.json()["data"] == []
    for agent in ("support", "failover"):
        run = httpx.post(
            f"{gateway.url}/api/v1/agents/{agent}/generate",
            json=RUN,
            headers=bearer(key),
            timeout=10,
        )
        assert run.status_code == 403, run.text
        assert error_of(run)["code"] == "agent_not_allowed"


def test_the_model_scope_still_holds_for_chat(gateway: GatewayProcess, keys: Keys) -> None:
    refused = httpx.post(
        f"{gateway.url}/v1/chat/completions",
        json={"model": "chat", "messages": QUESTION},
        headers=bearer(keys.other),
        timeout=10,
    )
    assert refused.status_code == 403
    allowed = httpx.post(
        f"{gateway.url}/v1/chat/completions",
        json={"model": "chat", "messages": QUESTION},
        headers=bearer(keys.app),
        timeout=10,
    )
    assert allowed.status_code == 200


def test_models_a_key_may_not_use_are_not_listed_or_retrievable(
    gateway: GatewayProcess, keys: Keys
) -> None:
    listed = httpx.get(f"{gateway.url}/v1/models", headers=bearer(keys.other), timeout=5)
    assert listed.status_code == 200
    assert {m["id"] for m in listed.json()["data"]} == {"primary"}
    hidden = httpx.get(f"{gateway.url}/v1/models/chat", headers=bearer(keys.other), timeout=5)
    assert hidden.status_code in (403, 404)
    error_of(hidden)
    shown = httpx.get(f"{gateway.url}/v1/models/primary", headers=bearer(keys.other), timeout=5)
    assert shown.status_code == 200
    assert shown.json()["id"] == "primary"


@pytest.mark.parametrize("path", ["/api/v1/status", "/api/v1/metrics", "/api/v1/events"])
def test_scoped_keys_never_reach_the_control_plane(
    gateway: GatewayProcess, keys: Keys, path: str
) -> None:
    for key in (keys.app, keys.other):
        response = httpx.get(f"{gateway.url}{path}", headers=bearer(key), timeout=5)
        assert response.status_code == 403
        assert error_of(response)["code"] == "admin_required"
