"""Properties of the attempt engine over random fault scripts: complete (asked plainly
or read from a stream), stream and hedged requests make the same retry and fail-over
decisions, and every admitted call is released whatever happens."""

from __future__ import annotations

import contextlib
import random

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bastion import (
    Endpoint,
    Fail,
    FailoverError,
    Hedge,
    ModelGroup,
    NoTargetAvailable,
    Reply,
    Router,
    RouterOptions,
    ScriptedModel,
    StreamError,
    TextDelta,
    chat,
)
from bastion.observability.events import FailedOver, RetryScheduled
from bastion.resilience.clock import FakeClock

NEVER = Hedge(initial=60.0, min_delay=60.0, max_delay=60.0)

# Failures before the first token, as an upstream gives them.
FAULTS = {
    "ok": None,
    "500": Fail("server_error", status=500),
    "503": Fail("unavailable", status=503),
    "429": Fail("rate_limited", status=429, retry_after=0.5),
    "429-long": Fail("rate_limited", status=429, retry_after=90.0),
    "reset": Fail("connection"),
    "400": Fail("invalid_request", status=400),
    "401": Fail("auth", status=401),
}

scripts = st.lists(
    st.lists(st.sampled_from(sorted(FAULTS)), min_size=0, max_size=6), min_size=1, max_size=3
)


def models_for(script: list[list[str]]) -> dict[str, ScriptedModel]:
    out = {}
    for index, steps in enumerate(script):
        name = f"e{index}"
        out[name] = ScriptedModel(
            [FAULTS[s] or Reply(f"answer from {name}") for s in steps],
            default=Reply(f"answer from {name}"),
        )
    return out


def build(
    script: list[list[str]],
    *,
    hedge: Hedge | None,
    events: list,
    failover_first: bool,
    upstream_stream: str = "auto",
) -> Router:
    models = models_for(script)
    return Router(
        [
            (Endpoint(id=n, provider="scripted", model=n, upstream_stream=upstream_stream), m)
            for n, m in models.items()
        ],
        {"chat": ModelGroup.of(*models, hedge=hedge)},
        options=RouterOptions(health_checks=False, failover_first=failover_first),
        default_model="chat",
        clock=FakeClock(),
        rng=random.Random(11),
        hooks=[events.append],
    )


def decisions(events: list) -> list[tuple[str, str, str]]:
    out = []
    for event in events:
        if isinstance(event, RetryScheduled):
            out.append(("retry", event.endpoint, event.kind))
        elif isinstance(event, FailedOver):
            out.append(("failover", event.endpoint, event.kind))
    return out


def released(router: Router) -> bool:
    return all(s.in_flight == 0 and s.breaker_probes == 0 for s in router.status())


async def run_complete(router: Router) -> tuple:
    try:
        answer = await router.complete(chat("q"))
    except (FailoverError, NoTargetAvailable) as error:
        return ("error", type(error).__name__, [(a.endpoint, a.kind) for a in error.attempts])
    return ("ok", answer.text, [(a.endpoint, a.kind) for a in answer.attempts])


async def run_stream(router: Router) -> tuple:
    stream = router.stream(chat("q"))
    try:
        events = [e async for e in stream]
    except (FailoverError, NoTargetAvailable) as error:
        return ("error", type(error).__name__, [(a.endpoint, a.kind) for a in error.attempts])
    assert not any(isinstance(e, StreamError) for e in events)
    text = "".join(e.text for e in events if isinstance(e, TextDelta))
    return ("ok", text, [(a.endpoint, a.kind) for a in stream.attempts])


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(script=scripts, failover_first=st.booleans())
async def test_complete_stream_and_hedged_requests_decide_alike(script, failover_first):
    results, traces = [], []
    for runner, hedge, mode in [
        (run_complete, None, "never"),
        (run_complete, None, "always"),
        (run_stream, None, "auto"),
        (run_complete, NEVER, "never"),
        (run_complete, NEVER, "always"),
        (run_stream, NEVER, "auto"),
    ]:
        events: list = []
        router = build(
            script,
            hedge=hedge,
            events=events,
            failover_first=failover_first,
            upstream_stream=mode,
        )
        results.append(await runner(router))
        traces.append(decisions(events))
        assert released(router)
    assert all(r == results[0] for r in results), results
    assert all(t == traces[0] for t in traces), traces


# Streams that break after text was sent, and readers that leave part-way.
broken = st.builds(
    lambda kind, chars: Fail(kind, after_chars=chars, partial="partial answer " * 4),
    st.sampled_from(["server_error", "connection", "timeout", "unavailable"]),
    st.integers(min_value=1, max_value=40),
)
step = st.one_of(st.sampled_from([f for f in FAULTS.values() if f is not None]), broken)


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    steps=st.lists(st.lists(step, max_size=4), min_size=1, max_size=3),
    leave_after=st.one_of(st.none(), st.integers(min_value=0, max_value=6)),
    hedged=st.booleans(),
)
async def test_every_admitted_call_is_released(steps, leave_after, hedged):
    models = {
        f"e{i}": ScriptedModel(list(s), default=Reply("fine " * 10, chunk=3))
        for i, s in enumerate(steps)
    }
    router = Router(
        [(Endpoint(id=n, provider="scripted", model=n), m) for n, m in models.items()],
        {"chat": ModelGroup.of(*models, hedge=NEVER if hedged else None)},
        options=RouterOptions(health_checks=False),
        default_model="chat",
        clock=FakeClock(),
        rng=random.Random(3),
    )
    stream = router.stream(chat("q"))
    seen = 0
    try:
        async for _ in stream:
            seen += 1
            if leave_after is not None and seen > leave_after:
                break
    except (FailoverError, NoTargetAvailable):
        pass
    finally:
        await stream.aclose()
    assert released(router)
    with contextlib.suppress(FailoverError, NoTargetAvailable):
        await router.complete(chat("q"))
    assert released(router)


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(steps=st.lists(st.lists(step, max_size=4), min_size=1, max_size=3), hedged=st.booleans())
async def test_a_whole_answer_read_from_a_stream_releases_every_call(steps, hedged):
    models = {
        f"e{i}": ScriptedModel(list(s), default=Reply("fine " * 10, chunk=3))
        for i, s in enumerate(steps)
    }
    router = Router(
        [
            (Endpoint(id=n, provider="scripted", model=n, upstream_stream="always"), m)
            for n, m in models.items()
        ],
        {"chat": ModelGroup.of(*models, hedge=NEVER if hedged else None)},
        options=RouterOptions(health_checks=False),
        default_model="chat",
        clock=FakeClock(),
        rng=random.Random(3),
    )
    try:
        answer = await router.complete(chat("q"))
    except (FailoverError, NoTargetAvailable):
        pass
    else:
        # A broken stream is never taken for an answer: what comes back is whole.
        assert answer.text == "fine " * 10
    assert released(router)
