"""What the router tells: events, the event logger, status, reload hand-over, and a
request its caller abandons."""

from __future__ import annotations

import asyncio

import pytest
import structlog
from router_support import build

from bastion import (
    EventLogger,
    Fail,
    Reply,
    Router,
    RouterOptions,
    ScriptedModel,
    chat,
)
from bastion.observability.events import (
    AttemptFinished,
    FailedOver,
    RequestFinished,
)
from bastion.resilience.breaker import BreakerState


async def test_events_tell_the_story_of_a_request():
    events: list = []
    router = build(
        {
            "primary": ScriptedModel([Fail("server_error", status=500), Fail("connection")]),
            "backup": ScriptedModel(["b"]),
        },
        events=events,
        options=RouterOptions(health_checks=False, failover_first=False),
    )
    await router.complete(chat("x"))
    kinds = [type(e).__name__ for e in events]
    assert kinds == [
        "AttemptFinished",
        "RetryScheduled",
        "AttemptFinished",
        "FailedOver",
        "AttemptFinished",
        "RequestFinished",
    ]
    assert isinstance(events[3], FailedOver) and events[3].kind == "connection"
    assert isinstance(events[4], AttemptFinished) and events[4].ok


async def test_a_failing_hook_does_not_break_the_request():
    def broken(event) -> None:
        raise RuntimeError("hook bug")

    router = build({"primary": ScriptedModel(["ok"])})
    router.events.subscribe(broken)
    assert (await router.complete(chat("x"))).text == "ok"


async def test_status_reports_breaker_and_counts():
    router = build({"primary": ScriptedModel([Fail("connection")]), "backup": ScriptedModel(["b"])})
    await router.complete(chat("x"))
    status = {s.id: s for s in router.status()}
    assert status["primary"].failed == 1 and status["backup"].served == 1
    assert status["primary"].breaker is BreakerState.CLOSED


async def test_event_logger_writes_one_structured_line_per_event():
    router = build(
        {
            "primary": ScriptedModel([Fail("connection", message="refused")]),
            "backup": ScriptedModel(["b"]),
        }
    )
    router.events.subscribe(EventLogger())
    with structlog.testing.capture_logs() as logs:
        await router.complete(chat("x"))
    failed_over = next(line for line in logs if line["event"] == "failed_over")
    assert failed_over["endpoint"] == "primary" and failed_over["kind"] == "connection"
    assert failed_over["log_level"] == "info"
    assert any(line["event"] == "request_finished" for line in logs)


async def test_reload_keeps_the_state_of_unchanged_endpoints_and_resets_changed_ones():
    config = {
        "endpoints": [
            {"id": "a", "provider": "openai", "model": "m", "base_url": "http://127.0.0.1:9/v1"},
            {"id": "b", "provider": "openai", "model": "m", "base_url": "http://127.0.0.1:9/v1"},
        ],
        "models": {"chat": {"targets": ["a", "b"]}},
        "breaker": {"consecutive_failures": 1},
        "health_checks": False,
    }
    old = Router.from_config(config)
    for rt in old._core.runtimes.values():
        rt.breaker.record_failure()
    old.isolate("b")
    changed = dict(
        config, endpoints=[config["endpoints"][0], {**config["endpoints"][1], "model": "m2"}]
    )
    new = Router.from_config(changed, previous=old)
    status = {s.id: s for s in new.status()}
    assert status["a"].breaker is BreakerState.OPEN  # unchanged: still open
    assert status["b"].breaker is BreakerState.CLOSED and not status["b"].isolated  # changed
    await old.aclose()  # closing the old router leaves the handed-over models alone
    await new.aclose()


async def test_a_cancelled_request_still_ends_on_record():
    events: list = []
    asked = asyncio.Event()

    async def hang(_: float) -> None:  # the upstream never answers
        asked.set()
        await asyncio.Event().wait()

    router = build({"primary": ScriptedModel([Reply("late", delay=1)], sleep=hang)}, events=events)
    task = asyncio.create_task(router.complete(chat("x")))
    await asked.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    finished = [e for e in events if isinstance(e, RequestFinished)]
    assert [(e.ok, e.kind, e.model) for e in finished] == [(False, "cancelled", "chat")]
    assert [s.in_flight for s in router.status()] == [0]


async def test_reload_keeps_the_ejections_of_unchanged_endpoints():
    config = {
        "endpoints": [
            {"id": "a", "provider": "openai", "model": "m", "base_url": "http://127.0.0.1:9/v1"},
            {"id": "c", "provider": "openai", "model": "m", "base_url": "http://127.0.0.1:9/v1"},
            {"id": "b", "provider": "scripted", "model": "m", "reply": "from b"},
        ],
        "models": {"chat": {"targets": ["a", "c", "b"]}},
        "outlier": {"consecutive_errors": 2, "base_ejection": "60s", "max_ejected_share": 1.0},
        "breaker": {"consecutive_failures": 100},
        "retry": {"connection": {"retries": 0}},
        "health_checks": False,
    }
    old = Router.from_config(config)
    for _ in range(2):  # nothing listens on port 9: a and c fail, b answers
        assert (await old.complete(chat("x"), model="chat")).endpoint == "b"
    assert {s.id for s in old.status() if s.ejected} == {"a", "c"}
    changed = dict(
        config,
        endpoints=[
            *config["endpoints"][:1],
            {**config["endpoints"][1], "model": "m2"},
            config["endpoints"][2],
        ],
    )
    new = Router.from_config(changed, previous=old)
    assert {s.id for s in new.status() if s.ejected} == {"a"}  # c changed: a fresh start
    answer = await new.complete(chat("x"), model="chat")
    assert [a.endpoint for a in answer.attempts] == ["c", "b"]  # a stays out
    await old.aclose()
    await new.aclose()
