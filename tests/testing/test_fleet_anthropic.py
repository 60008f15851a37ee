"""The Anthropic Messages API: the same faults and rules in Anthropic's format."""

from __future__ import annotations

import json

from bastion.testing import DEFAULT_TEXT, Fault


def names(reply) -> list[str | None]:
    return [event for event, _ in reply.events]


async def test_a_message_has_text_blocks_stop_reason_and_usage(up, chat) -> None:
    body = (await chat(up, api="anthropic")).json()
    assert body["type"] == "message"
    assert body["content"] == [{"type": "text", "text": DEFAULT_TEXT}]
    assert body["stop_reason"] == "end_turn"
    assert body["usage"]["output_tokens"] == 9


async def test_a_stream_follows_anthropics_event_sequence(up, chat) -> None:
    up.script(Fault.ok(text="Hello there", chunk_chars=6))
    reply = await chat(up, api="anthropic", stream=True)
    assert names(reply) == [
        "message_start",
        "ping",
        "content_block_start",
        "content_block_delta",
        "content_block_delta",
        "content_block_stop",
        "message_delta",
        "message_stop",
    ]
    assert reply.text == "Hello there"
    delta = reply.chunks[-2]
    assert delta["delta"]["stop_reason"] == "end_turn"
    assert delta["usage"] == {"output_tokens": 2}


async def test_tool_use_streams_input_json_deltas(up, chat) -> None:
    up.script(Fault.ok(tool_calls=[("get_weather", {"city": "Paris"})], chunk_chars=5))
    reply = await chat(up, api="anthropic", stream=True)
    start = next(c for c in reply.chunks if c["type"] == "content_block_start")
    assert start["content_block"]["type"] == "tool_use"
    assert start["content_block"]["name"] == "get_weather"
    partial = "".join(
        c["delta"]["partial_json"] for c in reply.chunks if c["type"] == "content_block_delta"
    )
    assert json.loads(partial) == {"city": "Paris"}
    assert reply.chunks[-2]["delta"]["stop_reason"] == "tool_use"


async def test_overloaded_is_a_529_with_anthropics_error_shape(up, chat) -> None:
    up.script(Fault.status(529))
    reply = await chat(up, api="anthropic")
    assert reply.status == 529
    assert reply.json() == {
        "type": "error",
        "error": {"type": "overloaded_error", "message": "Overloaded"},
    }


async def test_an_inband_error_is_an_error_event(up, chat) -> None:
    up.script(Fault.inband_error(4, message="Overloaded"))
    reply = await chat(up, api="anthropic", stream=True)
    assert reply.events[-1][0] == "error"
    assert reply.chunks[-1]["error"]["type"] == "overloaded_error"
    assert reply.text == "The "
    assert "message_stop" not in names(reply)


async def test_missing_done_means_no_message_stop(up, chat) -> None:
    up.script(Fault.missing_done())
    reply = await chat(up, api="anthropic", stream=True)
    assert names(reply)[-1] == "message_delta"


async def test_no_finish_means_no_stop_reason(up, chat) -> None:
    up.script(Fault.no_finish())
    reply = await chat(up, api="anthropic", stream=True)
    assert "message_delta" not in names(reply)
    assert names(reply)[-1] == "message_stop"


async def test_context_length_reads_prompt_is_too_long(up, chat) -> None:
    up.script(Fault.context_length())
    reply = await chat(up, api="anthropic")
    assert reply.status == 400
    assert reply.json()["error"]["message"].startswith("prompt is too long")


async def test_a_prefill_is_continued_natively(up, chat) -> None:
    reply = await chat(
        up,
        {"role": "user", "content": "hi"},
        {"role": "assistant", "content": [{"type": "text", "text": "The quick brown"}]},
        api="anthropic",
    )
    assert reply.json()["content"][0]["text"] == " fox jumps over the lazy dog."
    assert up.attempts[0].prefill


async def test_a_prefill_ending_in_whitespace_is_refused_as_the_real_api_does(up, chat) -> None:
    reply = await chat(
        up,
        {"role": "user", "content": "hi"},
        {"role": "assistant", "content": "The quick "},
        api="anthropic",
    )
    assert reply.status == 400
    assert "trailing whitespace" in reply.json()["error"]["message"]


async def test_the_system_prompt_counts_towards_the_prompt(up, chat) -> None:
    up.set_default(Fault.context_length(max_chars=10))
    reply = await chat(up, api="anthropic", system="x" * 20)
    assert reply.status == 400


async def test_max_tokens_is_required_as_by_the_real_api(up, http) -> None:
    body = {"model": "claude", "messages": [{"role": "user", "content": "hi"}]}
    async with http.post(up.base_url + "/messages", json=body) as response:
        error = await response.json()
    assert response.status == 400
    assert error["error"]["type"] == "invalid_request_error"
    assert "max_tokens" in error["error"]["message"]


async def test_attempts_record_which_api_was_used(up, chat) -> None:
    await chat(up, api="anthropic")
    await chat(up)
    assert [a.api for a in up.attempts] == ["anthropic", "openai"]
