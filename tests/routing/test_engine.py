"""The one attempt engine: complete, stream and hedged calls decide alike and always
release what they admitted."""

from __future__ import annotations

import asyncio
import contextlib
import random

from bastion import (
    Endpoint,
    Fail,
    FailoverError,
    Hedge,
    ModelGroup,
    Reply,
    Router,
    RouterOptions,
    ScriptedModel,
    TextDelta,
    chat,
)
from bastion.observability.events import FailedOver, HedgeStarted, RetryScheduled
from bastion.resilience.clock import FakeClock

# A hedge that never starts within a test: the race is armed, the second racer never runs.
NEVER = Hedge(initial=60.0, min_delay=60.0, max_delay=60.0)


def build(models, *, hedge=None, events=None, clock=None, failover_first=False) -> Router:
    endpoints = [
        (Endpoint(id=name, provider="scripted", model=f"model-{name}"), m)
        for name, m in models.items()
    ]
    return Router(
        endpoints,
        {"chat": ModelGroup.of(*models, hedge=hedge)},
        options=RouterOptions(health_checks=False, failover_first=failover_first),
        default_model="chat",
        clock=clock or FakeClock(),
        rng=random.Random(5),
        hooks=[events.append] if events is not None else (),
    )


def released(router: Router) -> bool:
    return all(s.in_flight == 0 and s.breaker_probes == 0 for s in router.status())


async def test_hedged_group_retries_a_quick_500_on_the_same_endpoint_like_any_group():
    events: list = []
    clock = FakeClock()
    primary = ScriptedModel([Fail("server_error", status=500), "from primary"])
    backup = ScriptedModel(default="from backup")
    router = build({"primary": primary, "backup": backup}, hedge=NEVER, events=events, clock=clock)

    answer = await router.complete(chat("x"))

    assert (answer.endpoint, answer.text) == ("primary", "from primary")
    assert [(a.endpoint, a.kind) for a in answer.attempts] == [
        ("primary", "server_error"),
        ("primary", None),
    ]
    retries = [e for e in events if isinstance(e, RetryScheduled)]
    assert len(retries) == 1 and retries[0].endpoint == "primary"
    # The backoff that was recorded is the one that was slept, nothing phantom.
    assert clock.sleeps == [answer.attempts[0].retry_in]
    assert not [e for e in events if isinstance(e, FailedOver)]
    assert backup.requests == []
    assert released(router)


async def test_hedged_stream_retries_a_quick_500_on_the_same_endpoint():
    primary = ScriptedModel([Fail("server_error", status=500), "from primary"])
    backup = ScriptedModel(default="from backup")
    router = build({"primary": primary, "backup": backup}, hedge=NEVER)
    stream = router.stream(chat("x"))
    text = "".join([e.text async for e in stream if isinstance(e, TextDelta)])
    assert (text, stream.endpoint) == ("from primary", "primary")
    assert backup.requests == []


async def test_a_hedge_that_fails_while_the_primary_runs_is_no_retry_and_the_primary_wins():
    events: list = []
    slow = ScriptedModel(default=Reply("slow but sure", delay=0.05))
    broken = ScriptedModel(default=Fail("server_error", status=500))
    router = build(
        {"slow": slow, "broken": broken},
        hedge=Hedge(initial=0.005, min_delay=0.001),
        events=events,
    )
    answer = await router.complete(chat("x"))
    assert answer.endpoint == "slow"
    assert any(isinstance(e, HedgeStarted) for e in events)
    assert not [e for e in events if isinstance(e, RetryScheduled)]
    failed = [e for e in events if isinstance(e, FailedOver)]
    assert [e.endpoint for e in failed] == ["broken"]
    assert released(router)


async def test_when_every_racer_fails_the_last_decision_is_carried_out():
    slow_fail = ScriptedModel(default=Fail("unavailable", status=503, delay=0.03))
    fast_fail = ScriptedModel(default=Fail("invalid_request", status=400))
    router = build(
        {"slow": slow_fail, "fast": fast_fail}, hedge=Hedge(initial=0.005, min_delay=0.001)
    )
    try:
        await router.complete(chat("x"))
    except FailoverError as error:
        # The 400 is the caller's answer: returned at once, the slow racer cancelled.
        assert error.kind.value == "invalid_request"
    else:
        raise AssertionError("expected the 400 to be returned")
    assert released(router)


async def test_a_cancelled_complete_releases_its_slot_and_ends_on_record():
    hang = ScriptedModel(default=Reply("never", delay=30.0))
    router = build({"hang": hang})
    task = asyncio.create_task(router.complete(chat("x")))
    await asyncio.sleep(0.01)
    assert router.status()[0].in_flight == 1
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task
    assert released(router)


async def test_a_stream_left_mid_answer_releases_its_slot():
    router = build({"a": ScriptedModel(default=Reply("word " * 40, chunk=5))})
    stream = router.stream(chat("x"))
    async for _ in stream:
        break
    await stream.aclose()
    assert released(router)


async def test_a_request_leaves_no_reference_cycle_behind():
    import gc

    router = build({"a": ScriptedModel(default="fine")})
    await router.complete(chat("x"))  # warm: anything built once is built now
    gc.collect()
    gc.disable()
    try:
        for _ in range(20):
            await router.complete(chat("x"))
            stream = router.stream(chat("x"))
            async for _event in stream:
                pass
        assert gc.collect() == 0
    finally:
        gc.enable()
