"""Every fault of the simulated fleet, over real loopback HTTP: the caller gets the
complete answer from a fallback, or a clean, bounded error — with the attempts and
the timing the policy promises (read back from the fleet's own attempt log)."""

from __future__ import annotations

import asyncio
import time

import pytest

from bastion import ErrorKind, FailoverError, StreamError, TextDelta, chat
from bastion.testing import DEFAULT_TEXT, Fault, Fleet

QUESTION = chat("Tell me about the fox.")


async def read_stream(stream) -> tuple[str, list]:
    events = [e async for e in stream]
    return "".join(e.text for e in events if isinstance(e, TextDelta)), events


def calls(fleet: Fleet, name: str) -> int:
    return len(fleet[name].attempts)


# --- plain answers ----------------------------------------------------------------------


async def test_latency_is_waited_out_and_the_answer_names_its_endpoint(fleet, make_router):
    fleet["primary"].set_default(Fault.ok(latency=0.1))
    answer = await make_router().complete(QUESTION)
    assert (answer.text, answer.endpoint, answer.model) == (
        DEFAULT_TEXT,
        "primary",
        "model-primary",
    )
    assert answer.usage.completion_tokens > 0
    assert answer.attempts[0].duration >= 0.1


async def test_429_with_retry_after_is_honoured_then_served_by_the_same_endpoint(
    fleet, make_router
):
    fleet["primary"].script(Fault.status(429, retry_after=1))
    answer = await make_router(failover_first=False).complete(QUESTION)
    assert answer.endpoint == "primary"
    first, second = fleet["primary"].attempts
    assert second.started_at - first.ended_at >= 0.95
    assert calls(fleet, "secondary") == 0


async def test_429_with_retry_after_ms_is_honoured(fleet, make_router):
    fleet["primary"].script(Fault.status(429, retry_after_ms=250))
    answer = await make_router(failover_first=False).complete(QUESTION)
    first, second = fleet["primary"].attempts
    assert answer.endpoint == "primary" and second.started_at - first.ended_at >= 0.24


async def test_429_with_retry_after_as_http_date_is_honoured(fleet, make_router):
    fleet["primary"].script(Fault.status(429, retry_after=2, retry_after_date=True))
    answer = await make_router(failover_first=False).complete(QUESTION)
    first, second = fleet["primary"].attempts
    # An HTTP-date has one-second resolution: at least one second is left to wait.
    assert answer.endpoint == "primary" and second.started_at - first.ended_at >= 0.9


async def test_429_with_a_long_retry_after_fails_over_at_once(fleet, make_router):
    fleet["primary"].script(Fault.status(429, retry_after=120))
    started = time.monotonic()
    answer = await make_router().complete(QUESTION)
    assert answer.endpoint == "secondary" and time.monotonic() - started < 1.0
    assert calls(fleet, "primary") == 1


async def test_429_storm_opens_the_breaker_instead_of_hammering(fleet, make_router):
    fleet["primary"].set_default(Fault.status(429))
    # Opened for long enough that a slow machine cannot see it half-open mid-test.
    router = make_router(
        retry={"rate_limited": {"base": "10ms", "max": "20ms"}},
        breaker={"open_for": "60s", "open_for_max": "60s"},
        outlier={"probe_after": 0},
    )
    first_wave = await asyncio.gather(*(router.complete(QUESTION) for _ in range(20)))
    assert {a.endpoint for a in first_wave} == {"secondary"}
    # 20 first attempts, plus at most the retry budget (max(3, 20 % of 20)).
    assert calls(fleet, "primary") <= 24
    before = calls(fleet, "primary")
    second_wave = [await router.complete(QUESTION) for _ in range(20)]
    assert {a.endpoint for a in second_wave} == {"secondary"}
    assert calls(fleet, "primary") == before  # breaker open: not one more call


@pytest.mark.parametrize(
    ("code", "kind", "tries"),
    [
        (500, "server_error", 3),
        (502, "unavailable", 2),
        (503, "unavailable", 2),
        (504, "unavailable", 2),
    ],
)
async def test_5xx_is_retried_per_its_kind_then_fails_over(fleet, make_router, code, kind, tries):
    fleet["primary"].set_default(Fault.status(code))
    answer = await make_router(failover_first=False).complete(QUESTION)
    assert answer.endpoint == "secondary" and answer.text == DEFAULT_TEXT
    assert calls(fleet, "primary") == tries
    assert [a.kind for a in answer.attempts] == [kind] * tries + [None]


@pytest.mark.parametrize("code", [500, 503, 429])
async def test_a_retryable_error_fails_over_at_once_by_default_while_a_fallback_serves(
    fleet, make_router, code
):
    fleet["primary"].set_default(Fault.status(code))
    answer = await make_router().complete(QUESTION)
    assert answer.endpoint == "secondary" and answer.text == DEFAULT_TEXT
    assert calls(fleet, "primary") == 1
    assert [a.retry_in for a in answer.attempts] == [0.0, 0.0]


async def test_a_retryable_error_is_retried_where_no_other_target_serves(fleet, make_router):
    fleet["primary"].script(Fault.status(500))
    answer = await make_router(["primary"]).complete(QUESTION)
    assert answer.endpoint == "primary"
    assert [a.kind for a in answer.attempts] == ["server_error", None]


async def test_connection_reset_before_headers_fails_over_at_once(fleet, make_router):
    fleet["primary"].set_default(Fault.reset())
    answer = await make_router().complete(QUESTION)
    assert answer.endpoint == "secondary"
    assert [a.kind for a in answer.attempts] == ["connection", None]


async def test_refused_connection_fails_over(fleet, make_router):
    router = make_router(endpoints={"primary": {"base_url": "http://127.0.0.1:9/v1"}})
    answer = await router.complete(QUESTION)
    assert answer.endpoint == "secondary" and answer.attempts[0].kind == "connection"


async def test_upstream_that_never_answers_is_left_at_the_headers_timeout(fleet, make_router):
    fleet["primary"].set_default(Fault.hang())
    started = time.monotonic()
    answer = await make_router().complete(QUESTION)
    elapsed = time.monotonic() - started
    assert answer.endpoint == "secondary"
    assert 0.35 < elapsed < 1.5
    assert calls(fleet, "primary") == 1  # a silent upstream is not retried


async def test_silent_stream_is_left_at_the_first_token_timeout_and_not_retried(fleet, make_router):
    fleet["primary"].set_default(Fault.hang())
    started = time.monotonic()
    stream = make_router().stream(QUESTION)
    text, _ = await read_stream(stream)
    assert text == DEFAULT_TEXT and stream.endpoint == "secondary"
    assert 0.35 < time.monotonic() - started < 1.5
    assert calls(fleet, "primary") == 1
    assert stream.attempts[0].kind == "timeout"


async def test_slow_first_token_fails_over_before_the_slow_token_arrives(fleet, make_router):
    fleet["primary"].set_default(Fault.slow_first_token(3.0))
    started = time.monotonic()
    stream = make_router().stream(QUESTION)
    text, _ = await read_stream(stream)
    assert text == DEFAULT_TEXT and stream.endpoint == "secondary"
    assert time.monotonic() - started < 1.5


async def test_400_is_returned_and_never_retried_on_the_same_endpoint(fleet, make_router):
    fleet["primary"].set_default(Fault.status(400))
    with pytest.raises(FailoverError) as caught:
        await make_router().complete(QUESTION)
    assert caught.value.kind is ErrorKind.INVALID_REQUEST and caught.value.status == 400
    assert calls(fleet, "primary") == 1 and calls(fleet, "secondary") == 0


async def test_context_length_400_moves_to_a_larger_window_only(fleet, make_router):
    fleet["primary"].set_default(Fault.context_length())
    router = make_router(["primary", "secondary", "big"])
    answer = await router.complete(QUESTION)
    assert answer.endpoint == "big"
    assert calls(fleet, "secondary") == 0  # same window as primary: pointless


async def test_content_filter_400_is_returned_to_the_caller(fleet, make_router):
    fleet["primary"].set_default(Fault.content_filter())
    with pytest.raises(FailoverError) as caught:
        await make_router().complete(QUESTION)
    assert caught.value.kind is ErrorKind.CONTENT_FILTER
    assert calls(fleet, "secondary") == 0


async def test_content_filter_fails_over_when_the_group_opts_in(fleet, make_router):
    fleet["primary"].set_default(Fault.content_filter())
    router = make_router(group={"failover_on_content_filter": True})
    assert (await router.complete(QUESTION)).endpoint == "secondary"


async def test_user_rule_from_yaml_reclassifies_an_upstream_answer(fleet, make_router):
    fleet["primary"].script(Fault.status(400, body={"error": {"message": "quota window full"}}))
    router = make_router(
        failover_first=False,
        group={"classify": [{"status": 400, "body": "quota", "kind": "rate_limited"}]},
        retry={"rate_limited": {"base": "10ms", "max": "10ms"}},
    )
    answer = await router.complete(QUESTION)
    assert answer.endpoint == "primary"
    assert [a.kind for a in answer.attempts] == ["rate_limited", None]


async def test_every_target_failing_is_one_bounded_error_listing_each_attempt(fleet, make_router):
    fleet["primary"].set_default(Fault.reset())
    fleet["secondary"].set_default(Fault.status(503))
    started = time.monotonic()
    with pytest.raises(FailoverError) as caught:
        await make_router().complete(QUESTION)
    assert time.monotonic() - started < 3.0
    assert [(a.endpoint, a.kind, a.status) for a in caught.value.attempts] == [
        ("primary", "connection", None),
        ("secondary", "unavailable", 503),
        ("secondary", "unavailable", 503),
    ]


async def test_degraded_answer_when_everything_is_down(fleet, make_router):
    fleet["primary"].set_default(Fault.reset())
    fleet["secondary"].set_default(Fault.reset())
    router = make_router(group={"degraded": {"message": "Busy — retry soon."}})
    answer = await router.complete(QUESTION)
    assert answer.degraded and answer.text == "Busy — retry soon."


# --- streams ------------------------------------------------------------------------


async def test_cut_stream_continues_by_prefill_with_no_repeated_text(fleet, make_router):
    fleet["primary"].set_default(Fault.cut(after_chars=17))
    router = make_router(endpoints={"secondary": {"prefill": "supported"}})
    stream = router.stream(QUESTION)
    text, events = await read_stream(stream)
    assert text == DEFAULT_TEXT
    assert events[-1].finish_reason == "stop"
    continuation = fleet["secondary"].attempts[0]
    assert continuation.prefill
    assert stream.endpoint == "secondary" and stream.seams == 1


async def test_cut_stream_continues_on_an_openai_endpoint_by_instruction_by_default(
    fleet, make_router
):
    fleet["primary"].set_default(Fault.cut(after_chars=17))
    text, events = await read_stream(make_router().stream(QUESTION))
    assert text == DEFAULT_TEXT and events[-1].finish_reason == "stop"
    (continuation,) = fleet["secondary"].attempts
    assert not continuation.prefill
    assert continuation.messages[-2]["content"] == DEFAULT_TEXT[:17]


async def test_cut_stream_on_a_prefilled_target_that_starts_over_is_read_once(fleet, make_router):
    # Told it supports prefill, the upstream ignores it and answers anew, as OpenAI does.
    fleet["primary"].set_default(Fault.cut(after_chars=17))
    fleet["secondary"].set_continuation(prefill="ignore")
    router = make_router(endpoints={"secondary": {"prefill": "supported"}})
    text, events = await read_stream(router.stream(QUESTION))
    assert text == DEFAULT_TEXT and events[-1].finish_reason == "stop"
    (continuation,) = fleet["secondary"].attempts
    assert continuation.prefill and continuation.text == DEFAULT_TEXT


async def test_cut_stream_continues_on_a_target_that_rejects_prefill(fleet, make_router):
    fleet["primary"].set_default(Fault.cut(after_chars=17))
    # An Anthropic endpoint is prefilled by default, until it rejects a prefill.
    anthropic = {"provider": "anthropic", "base_url": fleet["noprefill"].url, "api_key": "k"}
    router = make_router(["primary", "noprefill"], endpoints={"noprefill": anthropic})
    stream = router.stream(QUESTION)
    text, events = await read_stream(stream)
    assert text == DEFAULT_TEXT and events[-1].finish_reason == "stop"
    rejected, instructed = fleet["noprefill"].attempts
    assert rejected.prefill and rejected.status == 400
    assert not instructed.prefill
    # The upstream repeated a few words; they were trimmed before reaching the caller.
    assert instructed.text != DEFAULT_TEXT[17:]


async def test_target_known_to_reject_prefill_is_asked_by_instruction_at_once(fleet, make_router):
    fleet["primary"].set_default(Fault.cut(after_chars=17))
    router = make_router(
        ["primary", "noprefill"], endpoints={"noprefill": {"prefill": "unsupported"}}
    )
    text, _ = await read_stream(router.stream(QUESTION))
    assert text == DEFAULT_TEXT
    assert [a.prefill for a in fleet["noprefill"].attempts] == [False]


async def test_stall_mid_stream_is_left_at_the_idle_timeout_and_continued(fleet, make_router):
    fleet["primary"].set_default(Fault.stall(after_chars=9, duration=3.0))
    started = time.monotonic()
    stream = make_router().stream(QUESTION)
    text, _ = await read_stream(stream)
    assert text == DEFAULT_TEXT and stream.endpoint == "secondary"
    assert time.monotonic() - started < 1.5
    assert stream.attempts[0].kind == "timeout"


async def test_malformed_chunk_mid_stream_is_continued_elsewhere(fleet, make_router):
    fleet["primary"].set_default(Fault.malformed(after_chars=9))
    stream = make_router().stream(QUESTION)
    text, _ = await read_stream(stream)
    assert text == DEFAULT_TEXT and stream.attempts[0].kind == "protocol"


async def test_inband_error_event_in_a_200_stream_is_continued_elsewhere(fleet, make_router):
    fleet["primary"].set_default(Fault.inband_error(after_chars=9))
    stream = make_router(retry={"unavailable": {"retries": 0}}).stream(QUESTION)
    text, _ = await read_stream(stream)
    assert text == DEFAULT_TEXT
    assert stream.attempts[0].kind == "unavailable" and stream.endpoint == "secondary"


async def test_missing_done_after_a_finish_reason_is_a_complete_answer(fleet, make_router):
    fleet["primary"].set_default(Fault.missing_done())
    stream = make_router().stream(QUESTION)
    text, events = await read_stream(stream)
    assert text == DEFAULT_TEXT and events[-1].finish_reason == "stop"
    assert stream.endpoint == "primary" and calls(fleet, "secondary") == 0


async def test_stream_without_a_finish_reason_is_not_presented_as_complete(fleet, make_router):
    fleet["primary"].set_default(Fault.no_finish())
    stream = make_router().stream(QUESTION)
    text, events = await read_stream(stream)
    # The whole text arrived, but nothing said it was the end: the secondary confirms it.
    assert text == DEFAULT_TEXT and events[-1].finish_reason == "stop"
    assert stream.attempts[0].kind == "protocol" and stream.endpoint == "secondary"


async def test_truncated_stream_with_nowhere_to_continue_ends_in_an_error(fleet, make_router):
    fleet["primary"].set_default(Fault.cut(after_chars=17))
    stream = make_router(["primary"]).stream(QUESTION)
    text, events = await read_stream(stream)
    assert text == DEFAULT_TEXT[:17]
    assert isinstance(events[-2], StreamError) and events[-2].kind == "connection"
    assert events[-1].finish_reason == "error"


async def test_stream_failure_before_any_token_fails_over_invisibly(fleet, make_router):
    fleet["primary"].set_default(Fault.status(503))
    stream = make_router().stream(QUESTION)
    text, events = await read_stream(stream)
    assert text == DEFAULT_TEXT and stream.endpoint == "secondary"
    assert not any(isinstance(e, StreamError) for e in events)


async def test_cut_openai_stream_continues_on_an_anthropic_endpoint(fleet, make_router):
    fleet["primary"].set_default(Fault.cut(after_chars=17))
    router = make_router(
        endpoints={
            "secondary": {
                "provider": "anthropic",
                "base_url": fleet["secondary"].url,
                "api_key": "test-key",
            }
        }
    )
    stream = router.stream(QUESTION)
    text, _ = await read_stream(stream)
    assert text == DEFAULT_TEXT
    continuation = fleet["secondary"].attempts[0]
    assert continuation.api == "anthropic" and continuation.prefill


# --- taken out and taken back ---------------------------------------------------------


async def test_flapping_primary_is_taken_out_and_taken_back_after_it_heals(fleet, make_router):
    fleet["primary"].set_default(Fault.flapping(down_for=1.0, down=Fault.reset()))
    router = make_router(
        endpoints={"primary": {"health": {"interval": "100ms", "timeout": "200ms"}}},
        breaker={"consecutive_failures": 2, "open_for": "300ms", "open_for_max": "300ms"},
        health_checks=True,
    )
    await router.start()
    served: list[str] = []
    deadline = time.monotonic() + 2.5
    while time.monotonic() < deadline:
        answer = await router.complete(QUESTION)
        assert answer.text == DEFAULT_TEXT
        served.append(answer.endpoint)
        await asyncio.sleep(0.05)
    assert "secondary" in served[:5]  # taken out while down
    assert served[-5:] == ["primary"] * 5  # taken back after healing
    status = {s.id: s for s in router.status()}["primary"]
    assert status.in_service and status.breaker.value == "closed"
    assert fleet["primary"].probes > 0


async def test_hedge_beats_a_slow_first_token_and_the_loser_is_disconnected(fleet, make_router):
    fleet["primary"].set_default(Fault.slow_first_token(2.0))
    router = make_router(group={"hedge": {"initial": "100ms", "min_delay": "50ms"}})
    started = time.monotonic()
    stream = router.stream(QUESTION)
    text, _ = await read_stream(stream)
    assert text == DEFAULT_TEXT and stream.endpoint == "secondary"
    assert time.monotonic() - started < 1.0
    await asyncio.sleep(0.1)  # let the primary notice its client left
    loser = fleet["primary"].attempts[0]
    assert loser.outcome == "client_disconnected" and loser.ended_at - loser.started_at < 1.0
    assert all(s.in_flight == 0 for s in router.status())
