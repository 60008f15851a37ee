"""Each fault, over a real socket: what the client receives and what the log says."""

from __future__ import annotations

import asyncio
import time
from email.utils import parsedate_to_datetime

import aiohttp
import pytest

from bastion.testing import DEFAULT_TEXT, Fault


async def test_429_carries_retry_after_in_seconds(up, chat) -> None:
    up.script(Fault.status(429, retry_after=2))
    reply = await chat(up)
    assert reply.status == 429
    assert reply.headers["Retry-After"] == "2"
    assert reply.json()["error"]["code"] == "rate_limit_exceeded"


async def test_429_can_carry_retry_after_as_an_http_date(up, chat) -> None:
    up.script(Fault.status(429, retry_after=30, retry_after_date=True))
    reply = await chat(up)
    wait = parsedate_to_datetime(reply.headers["Retry-After"]).timestamp() - time.time()
    assert 25 < wait <= 31


async def test_429_can_carry_retry_after_ms(up, chat) -> None:
    up.script(Fault.status(429, retry_after_ms=250))
    reply = await chat(up)
    assert reply.headers["retry-after-ms"] == "250"
    assert "Retry-After" not in reply.headers


async def test_429_without_retry_after_has_no_such_header(up, chat) -> None:
    up.script(Fault.status(429))
    reply = await chat(up)
    assert "Retry-After" not in reply.headers


@pytest.mark.parametrize("code", [500, 502, 503, 504])
async def test_server_errors_have_an_openai_error_body(up, chat, code: int) -> None:
    up.script(Fault.status(code))
    reply = await chat(up, stream=True)
    assert reply.status == code
    assert reply.json()["error"]["type"] == "server_error"


async def test_a_status_fault_can_send_its_own_body(up, chat) -> None:
    up.script(Fault.status(400, body={"error": {"message": "insufficient_quota"}}))
    reply = await chat(up)
    assert reply.json() == {"error": {"message": "insufficient_quota"}}


async def test_reset_drops_the_connection_before_any_response(up, http) -> None:
    up.script(Fault.reset())
    body = {"model": "m", "messages": [{"role": "user", "content": "hi"}]}
    with pytest.raises(aiohttp.ClientOSError):
        await http.post(up.base_url + "/chat/completions", json=body)
    assert up.attempts[0].outcome == "reset"
    assert up.attempts[0].status is None


async def test_hang_never_answers_and_logs_the_client_leaving(up, http) -> None:
    up.script(Fault.hang())
    body = {"model": "m", "messages": [{"role": "user", "content": "hi"}]}
    with pytest.raises(asyncio.TimeoutError):
        await http.post(
            up.base_url + "/chat/completions", json=body, timeout=aiohttp.ClientTimeout(total=0.1)
        )
    for _ in range(50):  # the server notices the disconnect a moment later
        if up.attempts:
            break
        await asyncio.sleep(0.01)
    assert up.attempts[0].outcome == "client_disconnected"
    assert up.attempts[0].headers_at is None


async def test_slow_first_token_sends_headers_at_once_and_content_late(up, chat) -> None:
    up.script(Fault.slow_first_token(0.2))
    reply = await chat(up, stream=True)
    attempt = up.attempts[0]
    assert reply.text == DEFAULT_TEXT
    assert attempt.headers_at is not None
    assert attempt.first_token_at is not None
    assert attempt.headers_at - attempt.started_at < 0.1
    assert attempt.first_token_at - attempt.headers_at >= 0.2


async def test_slow_first_token_delays_a_whole_non_streaming_answer(up, chat) -> None:
    up.script(Fault.slow_first_token(0.15))
    reply = await chat(up)
    assert reply.status == 200
    assert up.attempts[0].headers_at - up.attempts[0].started_at >= 0.15


async def test_latency_delays_the_headers(up, chat) -> None:
    up.script(Fault.ok(latency=0.15))
    await chat(up, stream=True)
    assert up.attempts[0].headers_at - up.attempts[0].started_at >= 0.15


async def test_cut_breaks_the_stream_after_the_given_chars(up, chat) -> None:
    up.script(Fault.cut(10))
    reply = await chat(up, stream=True)
    assert isinstance(reply.error, aiohttp.ClientPayloadError)
    assert reply.text == "The quick "
    assert "[DONE]" not in reply.data
    assert all(c["choices"][0]["finish_reason"] is None for c in reply.chunks)
    assert up.attempts[0].text == "The quick "
    assert up.attempts[0].outcome == "cut"


async def test_cut_breaks_a_non_streaming_body_mid_way(up, chat) -> None:
    up.script(Fault.cut(10))
    reply = await chat(up)
    assert isinstance(reply.error, aiohttp.ClientPayloadError)


async def test_stall_pauses_mid_stream_then_finishes(up, chat) -> None:
    up.script(Fault.stall(16, 0.25))
    started = time.monotonic()
    reply = await chat(up, stream=True)
    assert time.monotonic() - started >= 0.25
    assert reply.text == DEFAULT_TEXT
    assert reply.data[-1] == "[DONE]"


async def test_malformed_sends_a_chunk_that_is_not_json(up, chat) -> None:
    up.script(Fault.malformed(8))
    reply = await chat(up, stream=True)
    bad = [d for d in reply.data if d != "[DONE]" and not d.endswith("}")]
    assert len(bad) == 1
    assert reply.data.index(bad[0]) == 2  # after the role chunk and 8 chars of content


async def test_malformed_makes_a_non_streaming_body_invalid_json(up, chat) -> None:
    up.script(Fault.malformed(8))
    reply = await chat(up)
    assert reply.status == 200
    with pytest.raises(ValueError):
        reply.json()


async def test_missing_done_finishes_but_never_sends_done(up, chat) -> None:
    up.script(Fault.missing_done())
    reply = await chat(up, stream=True)
    assert reply.error is None
    assert reply.chunks[-1]["choices"][0]["finish_reason"] == "stop"
    assert "[DONE]" not in reply.data


async def test_no_finish_sends_done_without_any_finish_reason(up, chat) -> None:
    up.script(Fault.no_finish())
    reply = await chat(up, stream=True)
    assert reply.data[-1] == "[DONE]"
    assert all(c["choices"][0]["finish_reason"] is None for c in reply.chunks)
    assert reply.text == DEFAULT_TEXT


async def test_inband_error_sends_an_error_event_mid_stream_then_ends(up, chat) -> None:
    up.script(Fault.inband_error(8))
    reply = await chat(up, stream=True)
    assert reply.error is None
    assert reply.chunks[-1] == {
        "error": {
            "message": "The server is overloaded",
            "type": "server_error",
            "param": None,
            "code": None,
        }
    }
    assert reply.text == "The quic"
    assert "[DONE]" not in reply.data


async def test_context_length_answers_openais_real_400(up, chat) -> None:
    up.script(Fault.context_length())
    reply = await chat(up)
    assert reply.status == 400
    assert reply.json()["error"]["code"] == "context_length_exceeded"
    assert "maximum context length is 8192 tokens" in reply.json()["error"]["message"]


async def test_context_length_with_max_chars_serves_a_short_prompt(up, chat) -> None:
    up.set_default(Fault.context_length(max_chars=50))
    short = await chat(up, {"role": "user", "content": "x" * 50})
    long = await chat(up, {"role": "user", "content": "x" * 51})
    assert (short.status, long.status) == (200, 400)


async def test_content_filter_answers_azures_400(up, chat) -> None:
    up.script(Fault.content_filter())
    error = (await chat(up)).json()["error"]
    assert error["code"] == "content_filter"
    assert "content management policy" in error["message"]
    assert error["innererror"]["code"] == "ResponsibleAIPolicyViolation"


async def test_reject_prefill_refuses_a_final_assistant_message(up, chat) -> None:
    up.set_default(Fault.reject_prefill())
    prefilled = await chat(
        up, {"role": "user", "content": "hi"}, {"role": "assistant", "content": "The"}
    )
    plain = await chat(up)
    assert prefilled.status == 400
    assert "prefill" in prefilled.json()["error"]["message"]
    assert plain.status == 200


async def test_flapping_is_down_then_healthy(up, chat) -> None:
    up.set_default(Fault.flapping(0.2))
    first = await chat(up)
    await asyncio.sleep(0.25)
    later = await chat(up)
    assert (first.status, later.status) == (503, 200)
    assert [a.outcome for a in up.attempts] == ["status", "ok"]


async def test_queued_faults_serve_one_request_each_then_the_default(up, chat) -> None:
    up.script(Fault.status(500), Fault.status(503))
    statuses = [(await chat(up)).status for _ in range(3)]
    assert statuses == [500, 503, 200]


async def test_a_model_queue_serves_only_that_model(up, chat) -> None:
    up.script(Fault.status(400), model="big")
    assert (await chat(up, model="small")).status == 200
    assert (await chat(up, model="big")).status == 400


async def test_a_model_default_applies_only_to_that_model(up, chat) -> None:
    up.set_default(Fault.context_length(), model="small")
    assert (await chat(up, model="small")).status == 400
    assert (await chat(up, model="big")).status == 200


async def test_heal_drops_queued_faults_and_restores_ok(up, chat) -> None:
    up.set_default(Fault.status(503))
    up.script(Fault.reset())
    up.heal()
    assert (await chat(up)).status == 200
    assert up.queued == {}


async def test_chunk_delay_paces_the_stream(up, chat) -> None:
    up.script(Fault.ok(text="abcdef", chunk_chars=2, chunk_delay=0.05))
    await chat(up, stream=True)
    attempt = up.attempts[0]
    assert attempt.ended_at - attempt.first_token_at >= 0.1  # two pauses after the first piece


async def test_the_second_attempt_time_can_be_compared_with_the_first(up, chat) -> None:
    up.script(Fault.status(429, retry_after=0.2))
    await chat(up)
    await asyncio.sleep(0.2)
    await chat(up)
    first, second = up.attempts
    assert second.started_at - first.ended_at >= 0.2
