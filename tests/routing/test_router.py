"""The attempt loop, driven by scripted models on a fake clock: no real waiting."""

from __future__ import annotations

import random

import pytest
from router_support import build

from bastion import (
    Action,
    Decision,
    Degraded,
    Endpoint,
    ErrorKind,
    Fail,
    FailoverError,
    ModelGroup,
    NoTargetAvailable,
    Reply,
    RetryPolicy,
    Router,
    RouterOptions,
    RuntimeContext,
    ScriptedModel,
    chat,
)
from bastion.observability.events import (
    PanicMode,
    RetryScheduled,
)
from bastion.resilience.breaker import BreakerConfig, BreakerState, BreakerTransition
from bastion.resilience.clock import FakeClock
from bastion.resilience.outlier import OutlierConfig
from bastion.resilience.retry import FailureInfo
from bastion.routing.options import BudgetConfig


async def test_success_names_the_endpoint_and_model_that_served():
    router = build({"primary": ScriptedModel(["hi"], model="m-1")})
    answer = await router.complete(chat("hello"))
    assert (answer.text, answer.endpoint, answer.model) == ("hi", "primary", "m-1")
    assert [a.ok for a in answer.attempts] == [True]


async def test_server_error_fails_over_at_once_while_a_fallback_is_in_service():
    clock = FakeClock()
    primary = ScriptedModel([Fail("server_error", status=500)] * 2 + ["ok"])
    router = build({"primary": primary, "backup": ScriptedModel(default="backup")}, clock=clock)
    answer = await router.complete(chat("x"))
    assert answer.endpoint == "backup"
    assert [a.kind for a in answer.attempts] == ["server_error", None]
    assert clock.sleeps == []


async def test_server_error_is_retried_with_backoff_when_no_other_target_serves():
    clock = FakeClock()
    primary = ScriptedModel([Fail("server_error", status=500)] * 2 + ["ok"])
    router = build({"primary": primary}, clock=clock)
    answer = await router.complete(chat("x"))
    assert answer.endpoint == "primary"
    assert [a.kind for a in answer.attempts] == ["server_error", "server_error", None]
    assert len(clock.sleeps) == 2


async def test_server_error_is_retried_with_backoff_then_succeeds_with_failover_first_off():
    clock = FakeClock()
    primary = ScriptedModel([Fail("server_error", status=500)] * 2 + ["ok"])
    backup = ScriptedModel(default="backup")
    router = build(
        {"primary": primary, "backup": backup},
        clock=clock,
        options=RouterOptions(health_checks=False, failover_first=False),
    )
    answer = await router.complete(chat("x"))
    assert answer.endpoint == "primary"
    assert [a.kind for a in answer.attempts] == ["server_error", "server_error", None]
    assert len(clock.sleeps) == 2
    assert 0 <= clock.sleeps[0] <= 0.2 and 0 <= clock.sleeps[1] <= 0.4
    assert backup.requests == []


async def test_connection_error_fails_over_at_once_without_waiting():
    clock = FakeClock()
    router = build(
        {"primary": ScriptedModel([Fail("connection")]), "backup": ScriptedModel(["b"])},
        clock=clock,
    )
    answer = await router.complete(chat("x"))
    assert answer.endpoint == "backup"
    assert clock.sleeps == []
    assert [a.endpoint for a in answer.attempts] == ["primary", "backup"]


async def test_429_with_retry_after_waits_that_long_then_succeeds():
    clock = FakeClock()
    primary = ScriptedModel([Fail("rate_limited", status=429, retry_after=2.0), "ok"])
    router = build({"primary": primary}, clock=clock)
    answer = await router.complete(chat("x"))
    assert answer.endpoint == "primary"
    assert clock.sleeps == [2.0]


async def test_429_with_retry_after_beyond_the_cap_fails_over_at_once():
    clock = FakeClock()
    primary = ScriptedModel([Fail("rate_limited", status=429, retry_after=120.0)])
    router = build({"primary": primary, "backup": ScriptedModel(["b"])}, clock=clock)
    answer = await router.complete(chat("x"))
    assert answer.endpoint == "backup"
    assert clock.sleeps == []


async def test_invalid_request_is_returned_at_once_and_never_tried_elsewhere():
    backup = ScriptedModel(default="b")
    router = build(
        {"primary": ScriptedModel([Fail("invalid_request", status=400)]), "backup": backup}
    )
    with pytest.raises(FailoverError) as caught:
        await router.complete(chat("x"))
    assert caught.value.kind is ErrorKind.INVALID_REQUEST
    assert caught.value.status == 400
    assert len(caught.value.attempts) == 1
    assert backup.requests == []


async def test_auth_error_fails_over_without_retrying_the_same_endpoint():
    primary = ScriptedModel([Fail("auth", status=401)], default="never")
    router = build({"primary": primary, "backup": ScriptedModel(["b"])})
    answer = await router.complete(chat("x"))
    assert answer.endpoint == "backup"
    assert len(primary.requests) == 1


async def test_content_filter_is_returned_unless_the_group_opts_in_to_failover():
    def models() -> dict[str, ScriptedModel]:
        return {
            "primary": ScriptedModel([Fail("content_filter", status=400)]),
            "backup": ScriptedModel(default="b"),
        }

    with pytest.raises(FailoverError) as caught:
        await build(models()).complete(chat("x"))
    assert caught.value.kind is ErrorKind.CONTENT_FILTER

    opted = ModelGroup.of("primary", "backup", failover_on_content_filter=True)
    answer = await build(models(), {"chat": opted}).complete(chat("x"))
    assert answer.endpoint == "backup"


async def test_context_length_moves_only_to_a_larger_window():
    small = ScriptedModel([Fail("context_length", status=400)])
    same = ScriptedModel(default="same size")
    smaller = ScriptedModel(default="smaller")
    large = ScriptedModel(default="large")
    router = build(
        {"small": small, "same": same, "smaller": smaller, "large": large},
        windows={"small": 8_000, "same": 8_000, "smaller": 4_000, "large": 128_000},
    )
    answer = await router.complete(chat("a long prompt"))
    assert answer.endpoint == "large"
    assert same.requests == [] and smaller.requests == []


async def test_every_target_failing_gives_one_error_listing_every_attempt():
    router = build(
        {
            "primary": ScriptedModel([Fail("connection", message="refused")]),
            "backup": ScriptedModel([Fail("unavailable", status=503)] * 2),
        }
    )
    with pytest.raises(FailoverError) as caught:
        await router.complete(chat("x"))
    error = caught.value
    assert [(a.endpoint, a.kind) for a in error.attempts] == [
        ("primary", "connection"),
        ("backup", "unavailable"),
        ("backup", "unavailable"),
    ]
    assert len(error.exceptions) == 3
    assert "primary" in str(error) and "refused" in str(error)


async def test_degraded_message_is_returned_flagged_when_everything_failed():
    group = ModelGroup.of("primary", degraded=Degraded(message="Busy, retry soon."))
    router = build({"primary": ScriptedModel([Fail("connection")])}, {"chat": group})
    answer = await router.complete(chat("x"))
    assert answer.degraded and answer.text == "Busy, retry soon."
    assert [a.kind for a in answer.attempts] == ["connection"]


async def test_degraded_handler_may_be_async_and_sees_the_request():
    async def cached(request, context) -> str:
        return f"cached answer for {request.messages[-1].content} ({context['tier']})"

    group = ModelGroup.of("primary", degraded=Degraded(handler=cached))
    router = build({"primary": ScriptedModel([Fail("connection")])}, {"chat": group})
    answer = await router.complete(chat("q"), context=RuntimeContext(tier="gold"))
    assert answer.degraded and answer.text == "cached answer for q (gold)"


async def test_deadline_bounds_all_attempts_together():
    clock = FakeClock()
    primary = ScriptedModel(default=Fail("rate_limited", status=429, retry_after=1.0))
    router = build({"primary": primary}, clock=clock)
    with pytest.raises(FailoverError) as caught:
        await router.complete(chat("x"), deadline=2.5)
    assert sum(clock.sleeps) <= 2.5
    assert len(caught.value.attempts) == 3


async def test_breaker_opens_and_traffic_skips_the_endpoint_until_it_half_opens():
    clock = FakeClock()
    events: list = []
    primary = ScriptedModel(default=Fail("connection"))
    backup = ScriptedModel(default="b")
    options = RouterOptions(
        breaker=BreakerConfig(consecutive_failures=3, open_for=10.0), health_checks=False
    )
    router = build(
        {"primary": primary, "backup": backup}, clock=clock, options=options, events=events
    )
    for _ in range(3):
        assert (await router.complete(chat("x"))).endpoint == "backup"
    assert len(primary.requests) == 3
    for _ in range(5):
        answer = await router.complete(chat("x"))
        assert [a.endpoint for a in answer.attempts] == ["backup"]
    assert len(primary.requests) == 3
    opened = [e for e in events if isinstance(e, BreakerTransition)]
    assert opened[-1].new is BreakerState.OPEN

    clock.advance(10.0)
    primary.default = "healed"
    answer = await router.complete(chat("x"))
    assert answer.endpoint == "primary"


async def test_panic_mode_tries_endpoints_anyway_when_every_breaker_is_open():
    events: list = []
    options = RouterOptions(breaker=BreakerConfig(consecutive_failures=1), health_checks=False)
    primary = ScriptedModel([Fail("connection")], default="back")
    router = build({"primary": primary}, options=options, events=events)
    with pytest.raises(FailoverError):
        await router.complete(chat("x"))
    answer = await router.complete(chat("x"))
    assert answer.text == "back"
    assert any(isinstance(e, PanicMode) for e in events)


async def test_isolated_endpoint_is_never_tried_until_recovered():
    primary = ScriptedModel(default="p")
    router = build({"primary": primary, "backup": ScriptedModel(default="b")})
    router.isolate("primary")
    assert (await router.complete(chat("x"))).endpoint == "backup"
    assert primary.requests == []
    router.recover("primary")
    assert (await router.complete(chat("x"))).endpoint == "primary"


async def test_isolating_every_endpoint_is_a_clear_error():
    router = build({"primary": ScriptedModel(default="p")})
    router.isolate("primary")
    with pytest.raises(NoTargetAvailable):
        await router.complete(chat("x"))


async def test_selector_of_runtime_context_picks_the_model_per_request():
    router = build({"fast": ScriptedModel(default="fast"), "smart": ScriptedModel(default="smart")})

    def by_tier(ctx: RuntimeContext) -> str:
        return "smart" if ctx.get("tier") == "pro" else "fast"

    async def by_tier_async(ctx: RuntimeContext) -> list[str]:
        return [by_tier(ctx), "fast"]

    pro, free = RuntimeContext(tier="pro"), RuntimeContext(tier="free")
    assert (await router.complete(chat("x"), model=by_tier, context=pro)).text == "smart"
    assert (await router.complete(chat("x"), model=by_tier, context=free)).text == "fast"
    assert (await router.complete(chat("x"), model=by_tier_async, context=pro)).text == "smart"


async def test_fallback_list_entry_carries_its_own_retry_count():
    clock = FakeClock()
    primary = ScriptedModel(default=Fail("connection"))
    router = build({"primary": primary, "backup": ScriptedModel(default="b")}, clock=clock)
    answer = await router.complete(chat("x"), model=[{"model": "primary", "retries": 2}, "backup"])
    assert answer.endpoint == "backup"
    assert len(primary.requests) == 3


async def test_group_fallbacks_come_after_the_groups_own_targets():
    groups = {
        "big": ModelGroup.of("big-a", "big-b", fallbacks=("small",)),
        "small": ModelGroup.of("small-a"),
    }
    router = build(
        {
            "big-a": ScriptedModel([Fail("unavailable", status=503)] * 2),
            "big-b": ScriptedModel([Fail("connection")]),
            "small-a": ScriptedModel(["small"]),
        },
        groups,
    )
    answer = await router.complete(chat("x"), model="big")
    assert answer.endpoint == "small-a"
    assert [a.endpoint for a in answer.attempts] == ["big-a", "big-b", "small-a"]


async def test_retry_budget_bounds_the_extra_load_of_retries():
    primary = ScriptedModel(default=Fail("server_error", status=500))
    # The breaker and ejection would stop the storm first; this test is about the budget.
    options = RouterOptions(
        budget=BudgetConfig(ratio=0.1, window=10.0, min_retries=2),
        breaker=BreakerConfig(consecutive_failures=10**6, min_calls=10**6),
        outlier=OutlierConfig(consecutive_errors=10**6),
        health_checks=False,
    )
    events: list = []
    router = build(
        {"primary": primary, "backup": ScriptedModel(default="b")}, options=options, events=events
    )
    for _ in range(20):
        await router.complete(chat("x"))
    retries = [e for e in events if isinstance(e, RetryScheduled)]
    assert len(retries) <= 2 + 0.1 * 20
    assert len(primary.requests) == 20 + len(retries)


async def test_weighted_strategy_spreads_first_choices_by_weight():
    a, b = ScriptedModel(default="a"), ScriptedModel(default="b")
    endpoints = [
        (Endpoint(id="a", provider="scripted", model="m", weight=3.0), a),
        (Endpoint(id="b", provider="scripted", model="m", weight=1.0), b),
    ]
    router = Router(
        endpoints,
        {"chat": ModelGroup.of("a", "b", strategy="weighted")},
        options=RouterOptions(health_checks=False),
        rng=random.Random(1),
    )
    for _ in range(400):
        await router.complete(chat("x"), model="chat")
    share = len(a.requests) / 400
    assert 0.65 < share < 0.85


async def test_least_latency_prefers_the_faster_endpoint_once_measured():
    clock = FakeClock()
    slow = ScriptedModel(default=Reply("slow", delay=0.5), sleep=clock.sleep)
    fast = ScriptedModel(default=Reply("fast", delay=0.05), sleep=clock.sleep)
    router = build(
        {"slow": slow, "fast": fast},
        {"chat": ModelGroup.of("slow", "fast", strategy="least-latency")},
        clock=clock,
    )
    answers = [await router.complete(chat("x")) for _ in range(6)]
    assert [a.endpoint for a in answers[2:]] == ["fast"] * 4


async def test_user_rule_reclassifies_a_failure():
    def quota_is_rate_limiting(error: BaseException) -> ErrorKind | None:
        return ErrorKind.RATE_LIMITED if "quota" in str(error) else None

    clock = FakeClock()
    primary = ScriptedModel([Fail("invalid_request", message="quota reached", status=400), "ok"])
    group = ModelGroup.of("primary", rules=(quota_is_rate_limiting,))
    router = build({"primary": primary}, {"chat": group}, clock=clock)
    answer = await router.complete(chat("x"))
    assert answer.text == "ok" and len(clock.sleeps) == 1


async def test_group_retry_override_from_python():
    primary = ScriptedModel(default=Fail("server_error", status=500))
    group = ModelGroup.of("primary", "backup", retry={"server_error": {"retries": 0}})
    router = build({"primary": primary, "backup": ScriptedModel(default="b")}, {"chat": group})
    assert (await router.complete(chat("x"))).endpoint == "backup"
    assert len(primary.requests) == 1


async def test_unknown_model_name_is_a_lookup_error():
    router = build({"primary": ScriptedModel(["ok"])})
    with pytest.raises(LookupError, match="nope"):
        await router.complete(chat("x"), model="nope")


async def test_degraded_answer_is_not_used_for_a_bad_request():
    group = ModelGroup.of("primary", degraded=Degraded(message="busy"))
    router = build(
        {"primary": ScriptedModel([Fail("invalid_request", status=400)])}, {"chat": group}
    )
    with pytest.raises(FailoverError):
        await router.complete(chat("x"))


async def test_fallback_entry_retries_must_be_non_negative():
    router = build({"primary": ScriptedModel(["ok"])})
    with pytest.raises(TypeError, match="retries"):
        await router.complete(chat("x"), model=[{"model": "primary", "retries": -1}])


async def test_group_may_bring_a_whole_policy_with_a_callable():
    def never_retry_unavailable(failure: FailureInfo) -> Decision | None:
        if failure.classification.kind is ErrorKind.UNAVAILABLE:
            return Decision(Action.RETURN, reason="this group never waits for a 503")
        return None

    primary = ScriptedModel(default=Fail("unavailable", status=503))
    group = ModelGroup.of("primary", "backup", retry=RetryPolicy(custom=never_retry_unavailable))
    router = build({"primary": primary, "backup": ScriptedModel(default="b")}, {"chat": group})
    with pytest.raises(FailoverError) as caught:
        await router.complete(chat("x"))
    assert caught.value.kind is ErrorKind.UNAVAILABLE and len(primary.requests) == 1


async def test_an_ejected_primary_is_probed_and_takes_traffic_back_within_seconds():
    clock = FakeClock()
    primary = ScriptedModel([Fail("connection")] * 5, default="primary is back")
    backup = ScriptedModel(default="backup")
    # The breaker is kept out of it here: this is the outlier detector's probe.
    options = RouterOptions(health_checks=False, breaker=BreakerConfig(consecutive_failures=50))
    router = build({"primary": primary, "backup": backup}, clock=clock, options=options)
    for _ in range(5):
        assert (await router.complete(chat("x"))).endpoint == "backup"
    assert not next(s for s in router.status() if s.id == "primary").in_service
    clock.advance(1.0)
    assert (await router.complete(chat("x"))).endpoint == "backup"  # no probe due yet
    clock.advance(1.0)
    assert (await router.complete(chat("x"))).endpoint == "primary"  # the probe
    assert (await router.complete(chat("x"))).endpoint == "primary"
    assert next(s for s in router.status() if s.id == "primary").in_service
