"""Threads belong to the resources a caller is bound to: a key's own (`resources`) or
an end user's, from a signed token (`x-bastion-user`). A caller reads, lists and
continues only those; an admin key sees every one. Real server, real keys, real
JWTs."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from typing import Any

import pytest
from agents_api_support import ADMIN, bearer, error_of, serve
from identity_support import (
    AUDIENCE,
    ISSUER,
    LOOSE,
    SOLO,
    TENANT_A,
    TENANT_B,
    USERS,
    as_user,
    bound_auth,
    token,
)

GENERATE = "/api/v1/agents/support/generate"


async def run(served: Any, headers: dict[str, str], **body: Any) -> Any:
    return await served.client.post(GENERATE, json={"prompt": "Hi", **body}, headers=headers)


async def read(served: Any, path: str, headers: dict[str, str], **params: str) -> Any:
    return await served.client.get(path, headers=headers, params=params)


async def thread_ids(served: Any, headers: dict[str, str], **params: str) -> list[str]:
    response = await read(served, "/api/v1/threads", headers, **params)
    assert response.status == 200, await response.text()
    return [t["id"] for t in (await response.json())["data"]]


# --- keys bound to resources ---------------------------------------------------------


async def test_a_key_of_one_resource_has_it_filled_in_and_lists_its_threads(tmp_path) -> None:
    async with serve(tmp_path, auth=bound_auth()) as served:
        ran = await run(served, bearer(SOLO), thread_id="s1")

        assert ran.status == 200
        assert await thread_ids(served, bearer(SOLO)) == ["s1"]
        thread = await (await read(served, "/api/v1/threads/s1", bearer(SOLO))).json()
        assert thread["resource_id"] == "solo"
        assert len(thread["messages"]) == 2


@pytest.mark.parametrize("key", [SOLO, TENANT_A])
async def test_a_run_naming_a_resource_outside_the_keys_is_refused_before_it_runs(
    tmp_path, key
) -> None:
    async with serve(tmp_path, auth=bound_auth()) as served:
        response = await run(served, bearer(key), thread_id="t1", resource_id="tenant-b/u1")

        assert response.status == 403
        error = await error_of(response)
        assert (error["code"], error["param"]) == ("resource_not_allowed", "resource_id")
        assert error["type"] == "permission_error"
        assert served.primary.attempts == []
        assert await thread_ids(served, bearer(ADMIN), resource_id="tenant-b/u1") == []


async def test_a_prefix_key_names_its_resource_on_every_run(tmp_path) -> None:
    async with serve(tmp_path, auth=bound_auth()) as served:
        unnamed = await run(served, bearer(TENANT_A))
        named = await run(served, bearer(TENANT_A), resource_id="tenant-a/u1")

        assert unnamed.status == 400
        assert (await error_of(unnamed))["param"] == "resource_id"
        assert named.status == 200
        run_id = (await named.json())["run_id"]
        got = await read(served, f"/api/v1/runs/{run_id}", bearer(TENANT_A))
        assert got.status == 200
        assert (await got.json())["resource_id"] == "tenant-a/u1"


async def test_an_app_key_cannot_read_or_continue_another_tenants_thread(tmp_path) -> None:
    async with serve(tmp_path, auth=bound_auth()) as served:
        theirs = await run(served, bearer(TENANT_B), thread_id="b1", resource_id="tenant-b/u1")
        assert theirs.status == 200
        their_run = (await theirs.json())["run_id"]
        before = await (
            await read(served, "/api/v1/threads/b1", bearer(ADMIN), resource_id="tenant-b/u1")
        ).json()
        attempts = len(served.primary.attempts)

        by_name = await read(
            served, "/api/v1/threads/b1", bearer(TENANT_A), resource_id="tenant-b/u1"
        )
        by_own = await read(
            served, "/api/v1/threads/b1", bearer(TENANT_A), resource_id="tenant-a/u1"
        )
        listed = await read(served, "/api/v1/threads", bearer(TENANT_A), resource_id="tenant-b/u1")
        continued = await run(served, bearer(TENANT_A), thread_id="b1", resource_id="tenant-a/u1")
        their_steps = await read(served, f"/api/v1/runs/{their_run}", bearer(TENANT_A))

        assert (by_name.status, (await error_of(by_name))["code"]) == (403, "resource_not_allowed")
        assert (by_own.status, (await error_of(by_own))["code"]) == (403, "wrong_resource")
        assert (listed.status, (await error_of(listed))["code"]) == (403, "resource_not_allowed")
        assert (continued.status, (await error_of(continued))["code"]) == (403, "wrong_resource")
        assert (their_steps.status, (await error_of(their_steps))["code"]) == (
            404,
            "run_not_found",
        )
        assert len(served.primary.attempts) == attempts
        after = await (
            await read(served, "/api/v1/threads/b1", bearer(ADMIN), resource_id="tenant-b/u1")
        ).json()
        assert after == before


async def test_an_app_key_lists_its_own_threads_and_an_admin_key_sees_all(tmp_path) -> None:
    async with serve(tmp_path, auth=bound_auth()) as served:
        for key, thread, resource in [
            (TENANT_A, "a1", "tenant-a/u1"),
            (TENANT_A, "a2", "tenant-a/u1"),
            (TENANT_B, "b1", "tenant-b/u1"),
        ]:
            assert (
                await run(served, bearer(key), thread_id=thread, resource_id=resource)
            ).status == 200

        mine = await thread_ids(served, bearer(TENANT_A), resource_id="tenant-a/u1")
        admin_a = await thread_ids(served, bearer(ADMIN), resource_id="tenant-a/u1")
        admin_b = await thread_ids(served, bearer(ADMIN), resource_id="tenant-b/u1")

        assert sorted(mine) == ["a1", "a2"]
        assert sorted(admin_a) == ["a1", "a2"]
        assert admin_b == ["b1"]


async def test_a_key_bound_to_nothing_still_runs_but_reads_nothing(tmp_path) -> None:
    async with serve(tmp_path, auth=bound_auth()) as served:
        ran = await run(served, bearer(LOOSE), thread_id="l1", resource_id="anyone")
        listed = await read(served, "/api/v1/threads", bearer(LOOSE), resource_id="anyone")

        assert ran.status == 200
        assert listed.status == 403
        assert (await error_of(listed))["code"] == "resource_not_allowed"


# --- end users' tokens ---------------------------------------------------------------


async def test_a_user_cannot_read_another_users_thread(tmp_path) -> None:
    alice, bob = as_user(USERS, token("alice")), as_user(USERS, token("bob"))
    async with serve(tmp_path, auth=bound_auth()) as served:
        assert (await run(served, alice, thread_id="ta")).status == 200
        bobs = await run(served, bob, thread_id="tb")
        assert bobs.status == 200
        bobs_run = (await bobs.json())["run_id"]

        own = await read(served, "/api/v1/threads/ta", alice)
        other = await read(served, "/api/v1/threads/tb", alice)
        by_name = await read(served, "/api/v1/threads/tb", alice, resource_id="user:bob")
        other_run = await read(served, f"/api/v1/runs/{bobs_run}", alice)
        own_list = await thread_ids(served, alice)

        assert own.status == 200
        assert (await own.json())["resource_id"] == "user:alice"
        assert (other.status, (await error_of(other))["code"]) == (403, "wrong_resource")
        assert (by_name.status, (await error_of(by_name))["code"]) == (403, "resource_not_allowed")
        assert other_run.status == 404
        assert own_list == ["ta"]
        assert await thread_ids(served, bearer(ADMIN), resource_id="user:bob") == ["tb"]


async def test_a_prefix_key_puts_its_users_under_its_prefix(tmp_path) -> None:
    async with serve(tmp_path, auth=bound_auth()) as served:
        response = await run(served, as_user(TENANT_A, token("carol")), thread_id="c1")

        assert response.status == 200
        assert await thread_ids(served, bearer(ADMIN), resource_id="tenant-a/carol") == ["c1"]


def hs256_by_hand(claims: dict[str, Any], key: bytes) -> str:
    """An HS256 token signed with `key` — a public key, say, which PyJWT will not sign
    with: the algorithm-confusion attack on gateways that take either."""

    def part(raw: bytes) -> bytes:
        return base64.urlsafe_b64encode(raw).rstrip(b"=")

    head = part(json.dumps({"alg": "HS256", "typ": "JWT"}).encode())
    body = part(json.dumps({"iss": ISSUER, "aud": AUDIENCE, **claims}).encode())
    signature = hmac.new(key, head + b"." + body, hashlib.sha256).digest()
    return (head + b"." + body + b"." + part(signature)).decode()


def _forged() -> str:
    head, _, _ = token("alice").rpartition(".")
    return head + "." + token("mallory", key="another-secret-0123456789abcdef-xyz").split(".")[2]


@pytest.mark.parametrize(
    ("make", "reason"),
    [
        (lambda: token("alice", expires_in=-60), "expired"),
        (lambda: token("alice", key="not-our-secret-0123456789abcdef-xyz"), "signature"),
        (_forged, "signature"),
        (lambda: token("alice", aud="someone-else"), "audience"),
        (lambda: token("alice", iss="https://evil.example"), "issuer"),
        (lambda: token("alice", exp=None), "'exp'"),
        (lambda: token(None), "'sub'"),
        (lambda: token("alice", algorithm="HS512", key="x" * 64), "algorithm"),
        (lambda: "not.a.jwt", "well-formed"),
    ],
)
async def test_a_bad_user_token_is_a_401_naming_the_header(tmp_path, make, reason) -> None:
    bad = make()
    async with serve(tmp_path, auth=bound_auth()) as served:
        for response in (
            await run(served, as_user(USERS, bad), thread_id="t1"),
            await read(served, "/api/v1/threads", as_user(USERS, bad)),
        ):
            assert response.status == 401
            error = await error_of(response)
            assert (error["param"], error["code"]) == ("x-bastion-user", "invalid_user_token")
            assert error["type"] == "authentication_error"
            assert reason in error["message"]
            assert bad not in await response.text()
            for part in bad.split("."):
                assert len(part) < 8 or part not in error["message"]
        assert served.primary.attempts == []


async def test_a_key_that_acts_for_users_needs_their_token(tmp_path) -> None:
    async with serve(tmp_path, auth=bound_auth()) as served:
        response = await run(served, bearer(USERS), thread_id="t1", resource_id="user:alice")

        assert response.status == 401
        assert (await error_of(response))["code"] == "user_token_required"


async def test_a_key_of_one_resource_takes_no_user_token(tmp_path) -> None:
    async with serve(tmp_path, auth=bound_auth()) as served:
        response = await run(served, as_user(SOLO, token("alice")))

        assert response.status == 403
        assert (await error_of(response))["code"] == "user_token_not_accepted"


async def test_two_user_tokens_are_refused(tmp_path) -> None:
    async with serve(tmp_path, auth=bound_auth()) as served:
        response = await served.client.post(
            GENERATE,
            json={"prompt": "Hi"},
            headers=[
                ("Authorization", f"Bearer {USERS}"),
                ("x-bastion-user", token("alice")),
                ("x-bastion-user", token("bob")),
            ],
        )

        assert response.status == 401
        assert (await error_of(response))["param"] == "x-bastion-user"


async def test_a_user_token_where_none_are_checked_is_a_401(tmp_path) -> None:
    auth = {"keys": [{"key": LOOSE, "name": "loose"}]}
    async with serve(tmp_path, auth=auth) as served:
        response = await run(served, as_user(LOOSE, token("alice")), resource_id="user:alice")

        assert response.status == 401
        assert "auth.user_tokens" in (await error_of(response))["message"]


@pytest.mark.parametrize("algorithm", ["RS256", "ES256"])
async def test_public_key_tokens_verify_and_another_keys_do_not(tmp_path, algorithm) -> None:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec, rsa

    def private_key() -> Any:
        if algorithm == "RS256":
            return rsa.generate_private_key(public_exponent=65537, key_size=2048)
        return ec.generate_private_key(ec.SECP256R1())

    ours, theirs = private_key(), private_key()
    public = ours.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    tokens = {"secret": None, "public_key": public.decode(), "algorithms": [algorithm]}
    async with serve(tmp_path, auth=bound_auth(**tokens)) as served:
        good = as_user(USERS, token("dave", key=ours, algorithm=algorithm))
        forged = as_user(USERS, token("dave", key=theirs, algorithm=algorithm))
        confused = as_user(USERS, hs256_by_hand({"sub": "dave", "exp": 2**40}, public))

        assert (await run(served, good, thread_id="d1")).status == 200
        assert await thread_ids(served, good) == ["d1"]
        assert (await run(served, forged, thread_id="d1")).status == 401
        assert (await run(served, confused, thread_id="d1")).status == 401
