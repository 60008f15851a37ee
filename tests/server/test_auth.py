"""API keys, scopes, the control plane's admin scope and the audit log, over real
sockets: the gateway app on a loopback TestServer, in front of a FakeUpstream.

The keys are random per test run and reach the config only through `${ENV}`, so a test
can look for them in logs and bodies.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import pytest
import structlog
from aiohttp.test_utils import TestClient, TestServer

from bastion.config import ConfigError, load_config
from bastion.config.schema import AuthSettings
from bastion.server.app import create_app
from bastion.server.audit import AuditLog
from bastion.server.auth import KeyRing, presented_key
from bastion.server.gateway import Gateway
from bastion.testing import FakeUpstream, Fault

APP_KEY = f"app-{secrets.token_hex(16)}"
OPS_KEY = f"ops-{secrets.token_hex(16)}"
AGENT_KEY = f"agent-{secrets.token_hex(16)}"
ENV = {"T_APP_KEY": APP_KEY, "T_OPS_KEY": OPS_KEY, "T_AGENT_KEY": AGENT_KEY}
QUESTION = {"model": "chat", "messages": [{"role": "user", "content": "Tell me about the fox."}]}


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def config_text(base_url: str, keys: str | None = None) -> str:
    if keys is None:
        keys = """
auth:
  keys:
    - {key: "${T_APP_KEY}", name: app, models: [chat]}
    - {key: "${T_OPS_KEY}", name: ops, admin: true}
    - {key: "${T_AGENT_KEY}", name: agent-user, models: [], agents: [support]}
"""
    return f"""
endpoints:
  - {{id: primary, provider: openai, base_url: "{base_url}", model: m-primary, health: false}}
  - {{id: canned, provider: scripted, model: canned, reply: "canned answer"}}
models:
  chat: {{targets: [primary]}}
  other: {{targets: [canned]}}
agents:
  support: {{instructions: "Help customers.", model: chat}}
  billing: {{instructions: "Answer billing questions.", model: chat}}
health_checks: false
memory: {{store: "sqlite://:memory:"}}
{keys}
"""


@pytest.fixture(autouse=True)
def key_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in ENV.items():
        monkeypatch.setenv(name, value)


@pytest.fixture
async def upstream() -> AsyncIterator[FakeUpstream]:
    async with FakeUpstream("primary") as up:
        yield up


@asynccontextmanager
async def serving(text: str) -> AsyncIterator[tuple[TestClient[Any, Any], Gateway]]:
    gateway = Gateway(load_config(text))
    async with TestClient(TestServer(create_app(gateway))) as client:
        yield client, gateway


@pytest.fixture
async def client(upstream: FakeUpstream) -> AsyncIterator[TestClient[Any, Any]]:
    async with serving(config_text(upstream.base_url)) as (client, _):
        yield client


async def error_of(response: Any) -> dict[str, Any]:
    body = await response.json()
    assert set(body) == {"error"}
    assert set(body["error"]) >= {"message", "type", "param", "code"}
    return dict(body["error"])


# --- presenting a key ------------------------------------------------------------------


async def test_bearer_key_is_accepted(client, upstream) -> None:
    response = await client.post("/v1/chat/completions", json=QUESTION, headers=bearer(APP_KEY))
    assert response.status == 200
    assert (await response.json())["choices"][0]["message"]["content"]
    assert len(upstream.attempts) == 1


async def test_x_api_key_is_accepted(client) -> None:
    response = await client.post(
        "/v1/chat/completions", json=QUESTION, headers={"x-api-key": APP_KEY}
    )
    assert response.status == 200


async def test_missing_key_is_401_in_openai_shape_with_www_authenticate(client, upstream) -> None:
    response = await client.post("/v1/chat/completions", json=QUESTION)
    assert response.status == 401
    assert response.headers["WWW-Authenticate"] == "Bearer"
    error = await error_of(response)
    assert (error["type"], error["code"]) == ("authentication_error", "invalid_api_key")
    assert upstream.attempts == []


async def test_wrong_key_sharing_a_prefix_with_a_real_one_is_401(client) -> None:
    # The last character changed, never kept: the key is random and may end in anything.
    wrong = APP_KEY[:-1] + ("1" if APP_KEY.endswith("0") else "0")
    response = await client.get("/v1/models", headers=bearer(wrong))
    assert response.status == 401
    assert (await error_of(response))["code"] == "invalid_api_key"


@pytest.mark.parametrize(
    "headers",
    [
        {"Authorization": ""},
        {"Authorization": "Bearer"},
        {"Authorization": "Bearer    "},
        {"Authorization": "Basic dXNlcjpwYXNz"},
        {"Authorization": f"Token {APP_KEY}"},
        {"Authorization": "Bearer " + "x" * 6000},
        {"x-api-key": ""},
        {"x-api-key": "   "},
    ],
    ids=[
        "empty",
        "bearer-alone",
        "bearer-blank",
        "basic",
        "other-scheme",
        "huge",
        "xak-empty",
        "xak-blank",
    ],
)
async def test_malformed_credentials_are_a_clean_401(client, headers) -> None:
    response = await client.get("/v1/models", headers=headers)
    assert response.status == 401
    assert (await error_of(response))["type"] == "authentication_error"


@pytest.mark.parametrize(
    "value", [b"Bearer \xd0\xba\xd0\xbb\xd1\x8e\xd1\x87", b"Bearer \xff\xfe\x80abc"]
)
async def test_non_ascii_authorization_is_a_401_not_a_500(client, value) -> None:
    # Sent over a raw socket: HTTP clients refuse to put such bytes in a header.
    reader, writer = await asyncio.open_connection(client.host, client.port)
    writer.write(
        b"GET /v1/models HTTP/1.1\r\nHost: t\r\nAuthorization: "
        + value
        + b"\r\nConnection: close\r\n\r\n"
    )
    await writer.drain()
    raw = await asyncio.wait_for(reader.read(), 5)
    writer.close()
    await writer.wait_closed()
    assert raw.split(b"\r\n", 1)[0] == b"HTTP/1.1 401 Unauthorized"
    assert b'"invalid_api_key"' in raw


def test_bearer_wins_over_x_api_key_and_x_api_key_is_the_fallback() -> None:
    assert presented_key({"Authorization": "Bearer a", "x-api-key": "b"}) == "a"
    assert presented_key({"Authorization": "Basic zz", "x-api-key": " b "}) == "b"
    assert presented_key({"Authorization": "bearer  a "}) == "a"
    assert presented_key({}) is None


# --- scopes --------------------------------------------------------------------------


async def test_key_without_the_model_scope_is_403_and_the_upstream_is_not_called(
    client, upstream
) -> None:
    response = await client.post("/v1/chat/completions", json=QUESTION, headers=bearer(AGENT_KEY))
    assert response.status == 403
    error = await error_of(response)
    assert (error["type"], error["code"]) == ("permission_error", "model_not_allowed")
    assert upstream.attempts == []


async def test_models_lists_only_the_models_the_key_may_use(client) -> None:
    scoped = await (await client.get("/v1/models", headers=bearer(APP_KEY))).json()
    everything = await (await client.get("/v1/models", headers=bearer(OPS_KEY))).json()
    assert [m["id"] for m in scoped["data"]] == ["chat"]
    assert {m["id"] for m in everything["data"]} >= {"chat", "other", "primary", "canned"}


async def test_non_admin_key_on_status_is_403_and_an_admin_key_gets_200(client) -> None:
    refused = await client.get("/api/v1/status", headers=bearer(APP_KEY))
    assert refused.status == 403
    error = await error_of(refused)
    assert (error["type"], error["code"]) == ("permission_error", "admin_required")
    assert (await client.get("/api/v1/status", headers=bearer(OPS_KEY))).status == 200


async def test_control_plane_without_a_key_is_401(client) -> None:
    response = await client.post("/api/v1/endpoints/primary/isolate")
    assert response.status == 401
    assert response.headers["WWW-Authenticate"] == "Bearer"


async def test_health_is_open_without_a_key(client) -> None:
    assert (await client.get("/api/v1/health")).status == 200


async def test_agent_routes_need_the_agent_in_the_key_scope(client) -> None:
    refused = await client.post(
        "/api/v1/agents/billing/generate", json={}, headers=bearer(AGENT_KEY)
    )
    assert refused.status == 403
    assert (await error_of(refused))["code"] == "agent_not_allowed"
    # A key in scope gets past auth: the empty body is then refused for what it lacks.
    allowed = await client.post(
        "/api/v1/agents/support/generate", json={}, headers=bearer(AGENT_KEY)
    )
    assert allowed.status == 400


async def test_a_reload_swaps_the_keys(upstream) -> None:
    async with serving(config_text(upstream.base_url)) as (client, gateway):
        swapped = """
auth:
  keys:
    - {key: "${T_OPS_KEY}", name: ops, admin: true}
"""
        await gateway.reload(load_config(config_text(upstream.base_url, swapped)))
        assert (await client.get("/v1/models", headers=bearer(APP_KEY))).status == 401
        assert (await client.get("/v1/models", headers=bearer(OPS_KEY))).status == 200


async def test_without_keys_the_gateway_is_open_and_says_so(upstream) -> None:
    with structlog.testing.capture_logs() as logs:
        async with serving(config_text(upstream.base_url, keys="")) as (client, _):
            response = await client.post("/v1/chat/completions", json=QUESTION)
            assert response.status == 200
            assert (await client.get("/api/v1/status")).status == 200
    warnings = [e for e in logs if e["log_level"] == "warning" and "without API keys" in e["event"]]
    assert len(warnings) == 1


# --- the key ring ----------------------------------------------------------------------


def test_many_keys_each_authenticate_to_their_own_principal_and_only_digests_are_kept() -> None:
    values = [f"key-{i:04d}-{secrets.token_hex(8)}" for i in range(500)]
    auth = AuthSettings.model_validate(
        {"keys": [{"key": v, "name": f"k{i}"} for i, v in enumerate(values)]}
    )
    ring = KeyRing.from_settings(auth)
    assert ring.enabled and len(ring) == 500
    for i in (0, 1, 250, 499):
        principal = ring.authenticate(values[i])
        assert principal is not None and principal.name == f"k{i}"
    assert ring.authenticate(values[0][:-1]) is None
    assert ring.authenticate("") is None
    assert ring.authenticate(None) is None
    held = repr(vars(ring))
    assert not any(v in held for v in values)


def test_key_scopes_must_name_known_models_and_agents() -> None:
    bad_model = '\nauth:\n  keys:\n    - {key: "${T_APP_KEY}", name: app, models: [nope]}\n'
    with pytest.raises(ConfigError, match=r"auth.keys\[0\].models: unknown endpoint or model"):
        load_config(config_text("http://x/v1", bad_model))
    bad_agent = '\nauth:\n  keys:\n    - {key: "${T_APP_KEY}", name: app, agents: [nope]}\n'
    with pytest.raises(ConfigError, match=r"auth.keys\[0\].agents: unknown agent 'nope'"):
        load_config(config_text("http://x/v1", bad_agent))


@pytest.mark.parametrize(
    ("value", "message"),
    [("short1", "at least 8 characters"), ("has a space in it", "visible ASCII")],
)
def test_an_unusable_key_is_a_config_error_that_does_not_quote_it(
    monkeypatch, value, message
) -> None:
    monkeypatch.setenv("T_BAD_KEY", value)
    keys = '\nauth:\n  keys:\n    - {key: "${T_BAD_KEY}", name: bad}\n'
    with pytest.raises(ConfigError, match=message) as caught:
        load_config(config_text("http://x/v1", keys))
    assert value not in str(caught.value)


def test_config_reprs_and_dumps_hide_the_keys() -> None:
    config = load_config(config_text("http://x/v1"))
    for shown in (repr(config), str(config.model_dump()), config.model_dump_json()):
        assert APP_KEY not in shown and OPS_KEY not in shown


# --- secrets stay secret ---------------------------------------------------------------


async def test_the_key_never_appears_in_logs_or_responses(upstream, caplog) -> None:
    caplog.set_level(logging.DEBUG)
    upstream.script(Fault.status(500), Fault.status(500), Fault.status(500), Fault.status(500))
    seen: list[str] = []
    with structlog.testing.capture_logs() as logs:
        async with serving(config_text(upstream.base_url)) as (client, gateway):
            near_misses = [APP_KEY[:-1], APP_KEY + "x", APP_KEY[:12], f"{APP_KEY} {APP_KEY}"]
            attempts: list[tuple[str, str, dict[str, str], Any]] = [
                ("POST", "/v1/chat/completions", bearer(APP_KEY), QUESTION),  # upstream errors
                ("POST", "/v1/chat/completions", bearer(APP_KEY), {"model": "other"}),  # 400
                ("POST", "/v1/chat/completions", bearer(APP_KEY), {**QUESTION, "model": "x"}),
                ("POST", "/v1/chat/completions", bearer(AGENT_KEY), QUESTION),  # 403
                ("GET", "/api/v1/status", bearer(APP_KEY), None),  # 403, audited
                ("GET", "/api/v1/status", bearer(OPS_KEY), None),
                ("GET", "/api/v1/events/nope", bearer(OPS_KEY), None),
                ("PUT", "/api/v1/config", bearer(OPS_KEY), None),
                *(("GET", "/api/v1/status", bearer(k), None) for k in near_misses),
                *(("GET", "/v1/models", {"x-api-key": k}, None) for k in near_misses),
            ]
            for method, path, headers, body in attempts:
                response = await client.request(method, path, headers=headers, json=body)
                seen.append(f"{response.status} {dict(response.headers)} {await response.text()}")
            gateway.audit.record("ops", "probe", "done", "ok")
    assert any(s.startswith("502") or s.startswith("503") for s in seen)
    everything = "\n".join([*seen, *(repr(e) for e in logs), caplog.text])
    for secret in (APP_KEY, OPS_KEY, AGENT_KEY):
        assert secret not in everything
        assert secret[4:20] not in everything  # not even a piece of it


# --- audit -----------------------------------------------------------------------------


async def test_isolate_is_audited_with_the_actor_name(client) -> None:
    with structlog.testing.capture_logs() as logs:
        response = await client.post("/api/v1/endpoints/primary/isolate", headers=bearer(OPS_KEY))
    assert response.status == 200
    audits = [e for e in logs if e["event"] == "audit"]
    assert [(e["actor"], e["action"], e["target"], e["outcome"]) for e in audits] == [
        ("ops", "isolate", "primary", "ok")
    ]
    assert audits[0]["timestamp"].endswith("+00:00")


async def test_refused_control_attempts_are_audited(client) -> None:
    with structlog.testing.capture_logs() as logs:
        await client.post("/api/v1/endpoints/primary/isolate")
        await client.post("/api/v1/endpoints/primary/isolate", headers=bearer(APP_KEY))
        await client.get("/v1/models")  # not the control plane: not audited
    audits = [
        (e["actor"], e["action"], e["target"], e["outcome"]) for e in logs if e["event"] == "audit"
    ]
    assert audits == [
        ("anonymous", "POST", "/api/v1/endpoints/primary/isolate", "unauthenticated"),
        ("app", "POST", "/api/v1/endpoints/primary/isolate", "forbidden"),
    ]


def test_audit_log_keeps_bounded_entries_and_logs_each_one() -> None:
    audit = AuditLog(clock=lambda: 0.0, keep=2)
    with structlog.testing.capture_logs() as logs:
        audit.record("ops", "isolate", "primary", "ok")
        audit.record("ops", "recover", "primary", "ok")
        last = audit.record("signal", "reload", "bastion.yaml", "ok")
    assert [e.action for e in audit.recent()] == ["recover", "reload"]
    assert last.timestamp == "1970-01-01T00:00:00.000+00:00"
    assert logs[-1] == {
        "event": "audit",
        "log_level": "info",
        "actor": "signal",
        "action": "reload",
        "target": "bastion.yaml",
        "outcome": "ok",
        "timestamp": "1970-01-01T00:00:00.000+00:00",
    }


def test_audit_fields_are_bounded() -> None:
    entry = AuditLog().record("ops", "GET", "/api/v1/" + "x" * 5000, "forbidden")
    assert len(entry.target) == 256
