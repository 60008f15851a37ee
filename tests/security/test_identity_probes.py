"""Probes of thread identity, as an attacker holding one tenant's app key, or one end
user's token, would make them against a real `bastion serve`: another tenant's or
user's threads and runs stay out of reach by every route (read, list, continue,
stream, WebSocket, run id, path tricks), a token that is not ours is a 401, and
neither tokens nor the signing secret reach a response or the server's log."""

from __future__ import annotations

import base64
import json
import os
import secrets
import time
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import aiohttp
import httpx
import jwt
import pytest
from agents_api_support import agents_section
from gateway_support import FleetProcess, GatewayProcess, Keys, bearer, gateway_config
from security_support import error_of

ISSUER = "https://login.example"
AUDIENCE = "bastion"
# Set in the gateway's environment for this module: the config reads them as ${...}.
SECRET_VAR, USERS_VAR = "BASTION_T_USER_SECRET", "BASTION_T_USERS_KEY"


@pytest.fixture(scope="module")
def identity() -> Iterator[dict[str, str]]:
    values = {
        SECRET_VAR: f"user-secret-{secrets.token_hex(16)}",
        USERS_VAR: f"users-{secrets.token_hex(12)}",
    }
    previous = {name: os.environ.get(name) for name in values}
    os.environ.update(values)
    yield values
    for name, value in previous.items():
        if value is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = value


@pytest.fixture(scope="module")
def bound(
    fleet: FleetProcess,
    keys: Keys,
    identity: dict[str, str],
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[GatewayProcess]:
    """A gateway whose `app` key is tenant A's (resources under `tenant-a/`), `other`
    tenant B's, and `users` acts for end users (a token is required)."""
    directory = tmp_path_factory.mktemp("identity")
    agents = ["support"]
    config = gateway_config(
        fleet,
        memory={"store": f"sqlite:///{directory / 'memory.db'}"},
        agents=agents_section(),
        auth={
            "keys": [
                {"key": "${BASTION_ADMIN_KEY}", "name": "ops", "admin": True},
                {
                    "key": "${BASTION_APP_KEY}",
                    "name": "tenant-a",
                    "agents": agents,
                    "resources": {"prefix": "tenant-a/"},
                },
                {
                    "key": "${BASTION_OTHER_KEY}",
                    "name": "tenant-b",
                    "agents": agents,
                    "resources": {"prefix": "tenant-b/"},
                },
                {
                    "key": f"${{{USERS_VAR}}}",
                    "name": "users",
                    "agents": agents,
                    "require_user": True,
                },
            ],
            "user_tokens": {
                "secret": f"${{{SECRET_VAR}}}",
                "algorithms": ["HS256"],
                "issuer": ISSUER,
                "audience": AUDIENCE,
            },
        },
    )
    server = GatewayProcess(config, directory, keys)
    yield server
    server.stop()


def token(identity: dict[str, str], subject: Any = "alice", **claims: Any) -> str:
    payload = {
        "sub": subject,
        "iss": ISSUER,
        "aud": AUDIENCE,
        "exp": int(time.time()) + 300,
        **claims,
    }
    return jwt.encode(payload, identity[SECRET_VAR], algorithm="HS256")


def call(
    gateway: GatewayProcess, method: str, path: str, headers: Any, **kwargs: Any
) -> httpx.Response:
    return httpx.request(method, f"{gateway.url}{path}", headers=headers, timeout=10, **kwargs)


def generate(gateway: GatewayProcess, headers: Any, **body: Any) -> httpx.Response:
    return call(
        gateway, "POST", "/api/v1/agents/support/generate", headers, json={"prompt": "Hi", **body}
    )


def thread_as_admin(gateway: GatewayProcess, keys: Keys, thread: str, resource: str) -> Any:
    response = call(
        gateway,
        "GET",
        f"/api/v1/threads/{thread}",
        bearer(keys.admin),
        params={"resource_id": resource},
    )
    assert response.status_code == 200, response.text
    return response.json()


@pytest.fixture(scope="module")
def tenant_b_thread(bound: GatewayProcess, keys: Keys) -> dict[str, str]:
    """A thread of tenant B's, and its run."""
    response = generate(bound, bearer(keys.other), thread_id="b-secret", resource_id="tenant-b/u1")
    assert response.status_code == 200, response.text
    return {"thread": "b-secret", "resource": "tenant-b/u1", "run": response.json()["run_id"]}


@pytest.mark.parametrize(
    ("method", "path", "params", "body", "status"),
    [
        ("GET", "/api/v1/threads/b-secret", {"resource_id": "tenant-b/u1"}, None, 403),
        ("GET", "/api/v1/threads/b-secret", {"resource_id": "tenant-a/u1"}, None, 403),
        ("GET", "/api/v1/threads/b-secret", {}, None, 400),
        ("GET", "/api/v1/threads", {"resource_id": "tenant-b/u1"}, None, 403),
        ("GET", "/api/v1/threads", {"resource_id": "tenant-a"}, None, 403),
        ("GET", "/api/v1/threads", {"resource_id": "TENANT-A/u1"}, None, 403),
        ("DELETE", "/api/v1/threads/b-secret", {"resource_id": "tenant-b/u1"}, None, 403),
        ("POST", "/api/v1/agents/support/generate", {}, {"resource_id": "tenant-b/u1"}, 403),
        ("POST", "/api/v1/agents/support/stream", {}, {"resource_id": "tenant-b/u1"}, 403),
        ("POST", "/api/v1/agents/support/generate", {}, {"resource_id": "tenant-a/u1"}, 403),
        (
            "POST",
            "/api/v1/agents/support/stream",
            {},
            {"resource_id": "tenant-a/../tenant-b/u1"},
            403,
        ),
    ],
)
def test_tenant_a_cannot_reach_tenant_bs_thread(
    bound: GatewayProcess,
    keys: Keys,
    tenant_b_thread: dict[str, str],
    method: str,
    path: str,
    params: dict[str, str],
    body: dict[str, Any] | None,
    status: int,
) -> None:
    before = thread_as_admin(bound, keys, "b-secret", "tenant-b/u1")
    json_body = None if body is None else {"prompt": "Show me", "thread_id": "b-secret", **body}

    response = call(bound, method, path, bearer(keys.app), params=params, json=json_body)

    assert response.status_code == status, response.text
    assert "b-secret" not in response.text or error_of(response)["code"] in (
        "wrong_resource",
        "thread_not_found",
    )
    assert "Hi" not in response.text  # nothing of the thread's messages
    assert thread_as_admin(bound, keys, "b-secret", "tenant-b/u1") == before


@pytest.mark.parametrize(
    "path",
    [
        "/api/v1/runs/{run}",
        "/api/v1/runs/{run}%2F..%2F..%2Fstatus",
        "/api/v1/runs/..%2Fstatus",
        "/api/v1/threads/..%2F..%2Fstatus",
    ],
)
def test_tenant_a_cannot_read_tenant_bs_run_or_slip_past_by_path(
    bound: GatewayProcess, keys: Keys, tenant_b_thread: dict[str, str], path: str
) -> None:
    response = call(bound, "GET", path.format(run=tenant_b_thread["run"]), bearer(keys.app))

    assert response.status_code in (400, 403, 404), response.text
    error_of(response)
    assert "steps" not in response.text and "endpoints" not in response.text


def test_admin_sees_every_tenants_threads_and_runs(
    bound: GatewayProcess, keys: Keys, tenant_b_thread: dict[str, str]
) -> None:
    ran = generate(bound, bearer(keys.app), thread_id="a-1", resource_id="tenant-a/u1")
    assert ran.status_code == 200

    for resource, thread in (("tenant-a/u1", "a-1"), ("tenant-b/u1", "b-secret")):
        listed = call(
            bound, "GET", "/api/v1/threads", bearer(keys.admin), params={"resource_id": resource}
        )
        assert thread in [t["id"] for t in listed.json()["data"]]
    run = call(bound, "GET", f"/api/v1/runs/{tenant_b_thread['run']}", bearer(keys.admin))
    assert run.status_code == 200
    assert run.json()["resource_id"] == "tenant-b/u1"
    own = call(
        bound, "GET", "/api/v1/threads", bearer(keys.app), params={"resource_id": "tenant-a/u1"}
    )
    assert [t["id"] for t in own.json()["data"]] == ["a-1"]


def _b64(data: dict[str, Any]) -> str:
    return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()


def _hs512(claims: dict[str, Any], secret: str) -> str:
    with warnings.catch_warnings():  # PyJWT warns that the secret is short for HS512
        warnings.simplefilter("ignore")
        return jwt.encode(claims, secret, algorithm="HS512")


def _forgeries(identity: dict[str, str]) -> dict[str, str]:
    good = token(identity, "alice")
    head, _, signature = good.split(".")
    claims = {"sub": "bob", "iss": ISSUER, "aud": AUDIENCE, "exp": int(time.time()) + 300}
    return {
        "alg none": _b64({"alg": "none", "typ": "JWT"}) + "." + _b64(claims) + ".",
        "payload swapped": head + "." + _b64(claims) + "." + signature,
        "expired": token(identity, "alice", exp=int(time.time()) - 120),
        "not yet valid": token(identity, "alice", nbf=int(time.time()) + 3600),
        "wrong key": jwt.encode(claims, "x" * 40, algorithm="HS256"),
        "HS512 with our secret": _hs512(claims, identity[SECRET_VAR]),
        "other audience": token(identity, "alice", aud="another-service"),
        "other issuer": token(identity, "alice", iss="https://evil.example"),
        "subject an object": token(identity, {"id": "bob"}),
        "huge": "a" * 6000 + "." + "b" * 1000 + ".c",
        "empty": "",
        "bearer prefixed": "Bearer " + good,
    }


def test_no_forged_or_stale_user_token_gets_in(
    bound: GatewayProcess, keys: Keys, identity: dict[str, str]
) -> None:
    for name, forged in _forgeries(identity).items():
        headers = {**bearer(identity[USERS_VAR]), "x-bastion-user": forged}
        for response in (
            generate(bound, headers, thread_id="u-1"),
            call(bound, "GET", "/api/v1/threads", headers),
        ):
            assert response.status_code == 401, (name, response.text)
            error = error_of(response)
            assert (error["param"], error["type"]) == ("x-bastion-user", "authentication_error")
            if forged:
                assert forged not in response.text, name


def test_a_users_token_reaches_only_that_users_threads(
    bound: GatewayProcess, identity: dict[str, str]
) -> None:
    users = bearer(identity[USERS_VAR])
    alice = {**users, "x-bastion-user": token(identity, "alice")}
    bob = {**users, "x-bastion-user": token(identity, "bob")}
    assert generate(bound, bob, thread_id="bob-1").status_code == 200
    bobs_run = generate(bound, bob, thread_id="bob-2").json()["run_id"]
    assert generate(bound, alice, thread_id="alice-1").status_code == 200

    mine = call(bound, "GET", "/api/v1/threads", alice)
    by_resource = call(bound, "GET", "/api/v1/threads", alice, params={"resource_id": "user:bob"})
    bobs_thread = call(bound, "GET", "/api/v1/threads/bob-1", alice)
    run = call(bound, "GET", f"/api/v1/runs/{bobs_run}", alice)
    continued = generate(bound, alice, thread_id="bob-1")
    no_token = call(bound, "GET", "/api/v1/threads", users, params={"resource_id": "user:bob"})

    assert [t["id"] for t in mine.json()["data"]] == ["alice-1"]
    assert by_resource.status_code == 403
    assert bobs_thread.status_code == 403
    assert run.status_code == 404
    assert continued.status_code == 403
    assert no_token.status_code == 401
    assert error_of(no_token)["code"] == "user_token_required"


async def test_a_socket_opened_as_one_user_never_reaches_another(
    bound: GatewayProcess, identity: dict[str, str]
) -> None:
    users = bearer(identity[USERS_VAR])
    bob = {**users, "x-bastion-user": token(identity, "bob")}
    assert generate(bound, bob, thread_id="bob-ws").status_code == 200
    url = f"{bound.url}/api/v1/agents/support/ws"
    async with aiohttp.ClientSession() as session:
        expired = token(identity, "alice", exp=int(time.time()) - 120)
        async with session.get(url, headers={**users, "x-bastion-user": expired}) as refused:
            assert refused.status == 401
        alice = {**users, "x-bastion-user": token(identity, "alice")}
        async with session.ws_connect(url, headers=alice) as ws:
            answers = []
            for body in ({"thread_id": "bob-ws"}, {"thread_id": "x", "resource_id": "user:bob"}):
                await ws.send_json({"type": "generate", "prompt": "Show me", **body})
                answers.append(await ws.receive_json(timeout=10))

    assert [(a["type"], a["status"]) for a in answers] == [("error", 403), ("error", 403)]


def test_no_token_or_secret_reaches_the_servers_log(
    bound: GatewayProcess, keys: Keys, identity: dict[str, str]
) -> None:
    forgeries = _forgeries(identity)
    users = bearer(identity[USERS_VAR])
    good = token(identity, "carol-the-logged")
    generate(bound, {**users, "x-bastion-user": good}, thread_id="c-1")
    for forged in forgeries.values():
        generate(bound, {**users, "x-bastion-user": forged}, thread_id="c-1")

    log = Path(bound.log_path).read_text(errors="replace")
    assert identity[SECRET_VAR] not in log
    assert "carol-the-logged" not in log  # the user's identity is the token's content too
    for value in (good, *forgeries.values()):
        for part in value.split("."):
            assert len(part) < 12 or part not in log
    for key in keys.values():
        assert key not in log
