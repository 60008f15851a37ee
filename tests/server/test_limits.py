"""Per-key limits: requests and tokens per minute, over HTTP and on `RateLimits` itself.

A minute-long window is never waited out here: every test checks what happens inside
one window, and the Retry-After it promises.
"""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer

from bastion.config import load_config
from bastion.config.schema import AuthSettings
from bastion.server.app import create_app
from bastion.server.auth import Principal
from bastion.server.gateway import Gateway
from bastion.server.keys import GATEWAY
from bastion.server.limits import RateLimits, sliding_wait
from bastion.testing import FakeUpstream

LIMITED_KEY = f"limited-{secrets.token_hex(16)}"
TOKENS_KEY = f"tokens-{secrets.token_hex(16)}"
FREE_KEY = f"free-{secrets.token_hex(16)}"
QUESTION = {"model": "chat", "messages": [{"role": "user", "content": "Tell me about the fox."}]}


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def auth(**limits: dict[str, int]) -> AuthSettings:
    """Keys named after the keyword, each with its limits."""
    return AuthSettings.model_validate(
        {
            "keys": [
                {"key": f"{name}-secret-value", "name": name, **lim} for name, lim in limits.items()
            ]
        }
    )


APP = Principal("app")


@pytest.fixture
async def client(monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[TestClient[Any, Any]]:
    monkeypatch.setenv("T_LIMITED_KEY", LIMITED_KEY)
    monkeypatch.setenv("T_TOKENS_KEY", TOKENS_KEY)
    monkeypatch.setenv("T_FREE_KEY", FREE_KEY)
    async with FakeUpstream("primary") as up:
        config = load_config(
            f"""
endpoints:
  - {{id: primary, provider: openai, base_url: "{up.base_url}", model: m, health: false}}
models:
  chat: {{targets: [primary]}}
health_checks: false
auth:
  keys:
    - {{key: "${{T_LIMITED_KEY}}", name: limited, requests_per_minute: 3}}
    - {{key: "${{T_TOKENS_KEY}}", name: tokens, tokens_per_minute: 10}}
    - {{key: "${{T_FREE_KEY}}", name: free}}
"""
        )
        async with TestClient(TestServer(create_app(Gateway(config)))) as client:
            yield client


async def chat(client: TestClient[Any, Any], key: str) -> Any:
    return await client.post("/v1/chat/completions", json=QUESTION, headers=bearer(key))


# --- over HTTP -------------------------------------------------------------------------


async def test_the_request_after_requests_per_minute_is_429_with_retry_after(client) -> None:
    for _ in range(3):
        assert (await chat(client, LIMITED_KEY)).status == 200
    refused = await chat(client, LIMITED_KEY)
    assert refused.status == 429
    # The oldest of the three leaves the moving window about a minute after it came.
    assert 55 <= int(refused.headers["Retry-After"]) <= 60
    error = (await refused.json())["error"]
    assert (error["type"], error["code"]) == ("rate_limit_error", "rate_limit_exceeded")
    assert "limited" in error["message"]
    # Other keys are not held back by this one.
    assert (await chat(client, FREE_KEY)).status == 200


async def test_tokens_per_minute_refuses_once_recorded_usage_fills_the_budget(client) -> None:
    first = await chat(client, TOKENS_KEY)
    assert first.status == 200
    assert (await first.json())["usage"]["total_tokens"] >= 10
    refused = await chat(client, TOKENS_KEY)
    assert refused.status == 429
    assert 1 <= int(refused.headers["Retry-After"]) <= 120


async def test_a_key_without_limits_is_never_refused(client) -> None:
    for _ in range(10):
        assert (await chat(client, FREE_KEY)).status == 200


# --- RateLimits ------------------------------------------------------------------------


def test_requests_per_minute_admits_n_then_says_when() -> None:
    limits = RateLimits(auth(app={"requests_per_minute": 2}))
    assert limits.admit(APP, 0) is None
    assert limits.admit(APP, 0) is None
    wait = limits.admit(APP, 0)
    assert wait is not None and 59 < wait <= 60


def test_a_principal_without_configured_limits_is_admitted() -> None:
    limits = RateLimits(auth(app={"requests_per_minute": 1}))
    for _ in range(5):
        assert limits.admit(Principal("someone-else"), 10**9) is None
    assert RateLimits(None).admit(APP, 10**9) is None


def test_tokens_are_checked_against_the_estimate_and_counted_from_usage() -> None:
    limits = RateLimits(auth(app={"tokens_per_minute": 100}))
    assert limits.admit(APP, 60) is None  # admit looks, it does not spend
    assert limits.admit(APP, 60) is None
    limits.record_tokens(APP, 70)
    assert limits.admit(APP, 20) is None  # 30 left
    assert limits.admit(APP, 40) is not None


def test_usage_beyond_the_budget_still_exhausts_it() -> None:
    limits = RateLimits(auth(app={"tokens_per_minute": 100}))
    limits.record_tokens(APP, 5000)
    wait = limits.admit(APP, 1)
    # All of this window's usage must fade out: up to the window's end plus a window.
    assert wait is not None and 0 < wait <= 120


def test_a_prompt_larger_than_the_whole_budget_is_let_into_an_empty_window() -> None:
    limits = RateLimits(auth(app={"tokens_per_minute": 100}))
    assert limits.admit(APP, 10_000) is None
    limits.record_tokens(APP, 100)
    assert limits.admit(APP, 10_000) is not None


def test_a_request_refused_for_tokens_does_not_use_up_a_request() -> None:
    limits = RateLimits(auth(app={"requests_per_minute": 1, "tokens_per_minute": 10}))
    limits.record_tokens(APP, 10)
    assert limits.admit(APP, 1) is not None
    fresh = limits.reconfigured(auth(app={"requests_per_minute": 1}))  # tokens dropped
    assert fresh.admit(APP, 1) is None


def test_reconfigured_keeps_the_counters_of_keys_that_remain() -> None:
    limits = RateLimits(auth(app={"requests_per_minute": 2, "tokens_per_minute": 50}))
    assert limits.admit(APP, 0) is None
    assert limits.admit(APP, 0) is None
    limits.record_tokens(APP, 50)
    reloaded = limits.reconfigured(auth(app={"requests_per_minute": 2, "tokens_per_minute": 50}))
    assert reloaded.admit(APP, 0) is not None
    raised = reloaded.reconfigured(auth(app={"requests_per_minute": 5}))
    assert raised.admit(APP, 0) is None  # the limit rose; what was used still counts
    assert raised.admit(APP, 0) is None
    assert raised.admit(APP, 0) is None
    assert raised.admit(APP, 0) is not None


def test_lowering_a_limit_on_reload_keeps_what_was_used() -> None:
    limits = RateLimits(auth(app={"requests_per_minute": 10}))
    for _ in range(3):
        assert limits.admit(APP, 0) is None
    lowered = limits.reconfigured(auth(app={"requests_per_minute": 3}))
    assert lowered.admit(APP, 0) is not None


def test_reconfigured_drops_the_counters_of_keys_that_went() -> None:
    limits = RateLimits(auth(app={"requests_per_minute": 1}))
    assert limits.admit(APP, 0) is None
    gone = limits.reconfigured(auth(other={"requests_per_minute": 1}))
    assert gone.admit(APP, 0) is None  # no limits for it now
    back = gone.reconfigured(auth(app={"requests_per_minute": 1}))
    assert back.admit(APP, 0) is None  # it starts afresh
    assert back.admit(APP, 0) is not None


async def test_a_gateway_reload_keeps_the_limits_counters(client) -> None:
    gateway = client.app[GATEWAY]
    for _ in range(3):
        assert (await chat(client, LIMITED_KEY)).status == 200
    await gateway.reload(gateway.config)
    assert (await chat(client, LIMITED_KEY)).status == 429


# --- the sliding window arithmetic -----------------------------------------------------


@pytest.mark.parametrize(
    ("previous", "current", "left", "target", "expected"),
    [
        (0, 0, 30.0, 10, 0.0),  # already within
        (0, 20, 30.0, 10, 30.0 + 30.0),  # past this window's end, then half of the next
        (60, 0, 30.0, 10, 20.0),  # 60 fading at 1/s from 30 to 10
        (60, 10, 30.0, 10, 30.0),  # fades to exactly 10 at the window's end
        (60, 100, 30.0, 50, 30.0 + 30.0),
    ],
)
def test_sliding_wait(previous, current, left, target, expected) -> None:
    assert sliding_wait(previous, current, left, 60.0, target) == pytest.approx(expected)
