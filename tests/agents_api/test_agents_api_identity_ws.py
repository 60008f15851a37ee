"""Identity over the WebSocket, and the rules that hold for every token: the socket is
bound at the upgrade to the user its token names, every turn is judged against that,
and a token that has expired since serves no more turns."""

from __future__ import annotations

import string
from typing import Any

import pytest
from agents_api_support import ADMIN, bearer, error_of, serve
from hypothesis import given
from hypothesis import strategies as st
from identity_support import SECRET, TENANT_A, USERS, as_user, bound_auth, token, user_tokens
from structlog.testing import capture_logs

from bastion.config.identity import UserTokenSettings
from bastion.config.sections import AuthSettings
from bastion.server.auth import KeyRing
from bastion.server.errors import ApiError
from bastion.server.identity import Principal, UserTokenError, UserTokens

PATH = "/api/v1/agents/support/ws"


async def turn(ws: Any, **body: Any) -> list[dict[str, Any]]:
    """Send one turn; its messages up to and including `finish` or `error`."""
    await ws.send_json({"type": "generate", "prompt": "Hi", **body})
    messages: list[dict[str, Any]] = []
    while not messages or messages[-1]["type"] not in ("finish", "error"):
        messages.append(await ws.receive_json(timeout=5))
    return messages


async def test_a_socket_serves_its_users_threads_and_refuses_anothers(tmp_path) -> None:
    async with serve(tmp_path, auth=bound_auth()) as served:
        bobs = await served.client.post(
            "/api/v1/agents/support/generate",
            json={"prompt": "Hi", "thread_id": "tb"},
            headers=as_user(USERS, token("bob")),
        )
        assert bobs.status == 200
        ws = await served.client.ws_connect(PATH, headers=as_user(USERS, token("alice")))

        own = await turn(ws, thread_id="ta")
        named = await turn(ws, thread_id="tb", resource_id="user:bob")
        continued = await turn(ws, thread_id="tb")
        again = await turn(ws, thread_id="ta")
        await ws.close()

        assert own[-1]["type"] == "finish"
        assert (named[-1]["code"], named[-1]["field"], named[-1]["status"]) == (
            "resource_not_allowed",
            "resource_id",
            403,
        )
        assert (continued[-1]["code"], continued[-1]["status"]) == ("wrong_resource", 403)
        assert again[-1]["type"] == "finish"
        alices = await served.client.get(
            "/api/v1/threads/ta", headers=bearer(ADMIN), params={"resource_id": "user:alice"}
        )
        assert len((await alices.json())["messages"]) == 4
        bobs_thread = await served.client.get(
            "/api/v1/threads/tb", headers=bearer(ADMIN), params={"resource_id": "user:bob"}
        )
        assert len((await bobs_thread.json())["messages"]) == 2


@pytest.mark.parametrize(
    "headers",
    [
        as_user(USERS, token("alice", expires_in=-60)),
        as_user(USERS, token("alice", key="not-our-secret-0123456789abcdef-xyz")),
        bearer(USERS),
    ],
)
async def test_a_socket_without_a_good_user_token_is_refused_at_the_upgrade(
    tmp_path, headers
) -> None:
    async with serve(tmp_path, auth=bound_auth()) as served:
        response = await served.client.get(PATH, headers=headers)

        assert response.status == 401
        assert (await error_of(response))["param"] == "x-bastion-user"


async def test_a_tenant_socket_refuses_another_tenants_resource(tmp_path) -> None:
    async with serve(tmp_path, auth=bound_auth()) as served:
        ws = await served.client.ws_connect(PATH, headers=bearer(TENANT_A))

        refused = await turn(ws, thread_id="x", resource_id="tenant-b/u1")
        served_turn = await turn(ws, thread_id="x", resource_id="tenant-a/u1")
        await ws.close()

        assert refused[-1]["code"] == "resource_not_allowed"
        assert served_turn[-1]["type"] == "finish"


def _bound(expires_in: float) -> Principal:
    """The principal of `users` bound by a fresh token, as the middleware binds it."""
    ring = KeyRing.from_settings(AuthSettings.model_validate(bound_auth()))
    principal = ring.authenticate(USERS)
    assert principal is not None
    return ring.bind_user(principal, token("alice", expires_in=expires_in))


def test_a_bound_principal_stops_serving_when_its_token_expires() -> None:
    principal = _bound(expires_in=100)
    assert principal.expires_at is not None

    principal.check_fresh(principal.expires_at - 1)
    with pytest.raises(ApiError) as expired:
        principal.check_fresh(principal.expires_at)

    assert expired.value.status == 401
    assert expired.value.param == "x-bastion-user"
    assert principal.resource_for(None) == "user:alice"


_VERIFIER = UserTokens(UserTokenSettings(**user_tokens()))
_TOKEN_TEXT = st.text(alphabet=string.ascii_letters + string.digits + "-_.=+/ ", max_size=300)


@given(_TOKEN_TEXT)
def test_no_string_but_a_signed_token_verifies_and_no_refusal_quotes_it(text: str) -> None:
    with pytest.raises(UserTokenError) as refused:
        _VERIFIER.verify(text, "user:")

    message = str(refused.value)
    for piece in text.replace("-", ".").split("."):
        assert len(piece) < 6 or piece not in message


@given(st.text(min_size=1, max_size=40).filter(str.isprintable))
def test_every_printable_subject_binds_to_its_own_resource(subject: str) -> None:
    user = _VERIFIER.verify(token(subject), "tenant-a/")
    assert user.subject == subject

    signed_by_another = token(subject, key=SECRET[::-1])
    with pytest.raises(UserTokenError):
        _VERIFIER.verify(signed_by_another, "tenant-a/")


def test_with_user_tokens_the_gateway_warns_of_each_app_key_bound_to_nothing() -> None:
    with capture_logs() as logs:
        KeyRing.from_settings(AuthSettings.model_validate(bound_auth()))

    warned = [e["key"] for e in logs if "bound to no resources" in e["event"]]
    assert warned == ["loose"]
