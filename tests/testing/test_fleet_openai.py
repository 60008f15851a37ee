"""The OpenAI wire format, checked byte-level and through the official SDK."""

from __future__ import annotations

import json

import aiohttp
import openai

from bastion.testing import DEFAULT_TEXT, FakeUpstream, Fault


def sdk(up: FakeUpstream) -> openai.AsyncOpenAI:
    return openai.AsyncOpenAI(base_url=up.base_url, api_key="x", max_retries=0, timeout=5)


async def test_a_completion_has_the_text_finish_reason_and_usage(up, chat) -> None:
    reply = await chat(up, {"role": "user", "content": "one two three"})
    body = reply.json()
    assert reply.status == 200
    assert body["object"] == "chat.completion"
    assert body["choices"][0]["message"] == {
        "role": "assistant",
        "content": DEFAULT_TEXT,
        "refusal": None,
    }
    assert body["choices"][0]["finish_reason"] == "stop"
    assert body["usage"] == {
        "prompt_tokens": 3,
        "completion_tokens": 9,
        "total_tokens": 12,
        "prompt_tokens_details": {"cached_tokens": 0},
        "completion_tokens_details": {"reasoning_tokens": 0},
    }
    assert body["system_fingerprint"] == "fp_bastion_fleet"


async def test_a_stream_opens_with_a_role_chunk_and_ends_with_finish_then_done(up, chat) -> None:
    reply = await chat(up, stream=True)
    assert reply.headers["Content-Type"].startswith("text/event-stream")
    first, *content, finish = reply.chunks
    assert first["choices"][0]["delta"]["role"] == "assistant"
    assert [c["choices"][0]["delta"]["content"] for c in content][:2] == ["The quic", "k brown "]
    assert finish["choices"][0] == {
        "index": 0,
        "delta": {},
        "logprobs": None,
        "finish_reason": "stop",
    }
    assert reply.data[-1] == "[DONE]"
    assert reply.text == DEFAULT_TEXT


async def test_include_usage_adds_a_usage_chunk_with_no_choices_before_done(up, chat) -> None:
    reply = await chat(up, stream=True, stream_options={"include_usage": True})
    usage_chunk = reply.chunks[-1]
    assert usage_chunk["choices"] == []
    assert usage_chunk["usage"]["completion_tokens"] == 9
    assert reply.data[-1] == "[DONE]"


async def test_chunk_chars_sets_the_size_of_content_pieces(up, chat) -> None:
    up.script(Fault.ok(text="abcdefg", chunk_chars=3))
    reply = await chat(up, stream=True)
    pieces = [c["choices"][0]["delta"].get("content") for c in reply.chunks[1:-1]]
    assert pieces == ["abc", "def", "g"]


async def test_tool_calls_stream_as_deltas_with_id_and_name_then_argument_pieces(up, chat) -> None:
    up.script(Fault.ok(tool_calls=[("get_weather", '{"city":"Paris"}')], chunk_chars=6))
    reply = await chat(up, stream=True)
    calls = [c["choices"][0]["delta"]["tool_calls"][0] for c in reply.chunks[1:-1]]
    assert calls[0] == {
        "index": 0,
        "id": "call_fake1_0",
        "type": "function",
        "function": {"name": "get_weather", "arguments": ""},
    }
    assert "".join(c["function"]["arguments"] for c in calls[1:]) == '{"city":"Paris"}'
    assert reply.chunks[-1]["choices"][0]["finish_reason"] == "tool_calls"


async def test_a_tool_call_completion_has_null_content(up, chat) -> None:
    up.script(Fault.ok(tool_calls=[("lookup", {"id": 1})]))
    message = (await chat(up)).json()["choices"][0]["message"]
    assert message["content"] is None
    assert message["tool_calls"][0]["function"] == {"name": "lookup", "arguments": '{"id": 1}'}


async def test_the_sdk_reads_a_completion(up) -> None:
    async with sdk(up) as client:
        completion = await client.chat.completions.create(
            model="gpt-test", messages=[{"role": "user", "content": "hi"}]
        )
    assert completion.choices[0].message.content == DEFAULT_TEXT
    assert completion.usage is not None
    assert completion.usage.total_tokens == 10


async def test_the_sdk_reads_a_stream_with_usage(up) -> None:
    async with sdk(up) as client:
        stream = await client.chat.completions.create(
            model="gpt-test",
            messages=[{"role": "user", "content": "hi"}],
            stream=True,
            stream_options={"include_usage": True},
        )
        chunks = [chunk async for chunk in stream]
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == DEFAULT_TEXT
    assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == "stop"
    assert chunks[-1].usage is not None


async def test_the_sdk_assembles_a_streamed_tool_call(up) -> None:
    up.script(Fault.ok(tool_calls=[("get_weather", {"city": "Paris"})], chunk_chars=4))
    async with sdk(up) as client:
        stream = await client.chat.completions.create(
            model="gpt-test", messages=[{"role": "user", "content": "hi"}], stream=True
        )
        deltas = [c.choices[0].delta for c in [chunk async for chunk in stream] if c.choices]
    pieces = [tc for d in deltas for tc in (d.tool_calls or [])]
    assert pieces[0].function.name == "get_weather"
    assert json.loads("".join(p.function.arguments or "" for p in pieces)) == {"city": "Paris"}


async def test_the_sdk_sees_a_429_with_its_retry_after(up) -> None:
    up.script(Fault.status(429, retry_after=2))
    async with sdk(up) as client:
        try:
            await client.chat.completions.create(
                model="gpt-test", messages=[{"role": "user", "content": "hi"}]
            )
        except openai.RateLimitError as exc:
            assert exc.response.headers["retry-after"] == "2"
            assert exc.code == "rate_limit_exceeded"
        else:
            raise AssertionError("expected a RateLimitError")


async def test_the_sdk_lists_models(up) -> None:
    async with sdk(up) as client:
        models = [m.id async for m in client.models.list()]
    assert models == ["primary"]


async def test_a_body_that_is_not_json_gets_a_400_in_openai_shape(up, http) -> None:
    async with http.post(up.base_url + "/chat/completions", data=b"{nope") as response:
        body = await response.json()
    assert response.status == 400
    assert body["error"]["type"] == "invalid_request_error"
    assert up.attempts[0].outcome == "bad_request"


async def test_a_request_without_messages_gets_a_400_naming_the_field(up, http) -> None:
    async with http.post(up.base_url + "/chat/completions", json={"model": "m"}) as response:
        body = await response.json()
    assert response.status == 400
    assert "'messages'" in body["error"]["message"]


async def test_any_model_name_is_served(up, chat) -> None:
    reply = await chat(up, model="some-other-model")
    assert reply.json()["model"] == "some-other-model"


async def test_content_given_as_parts_counts_as_text(up, chat) -> None:
    parts = [{"type": "text", "text": "The quick "}, {"type": "text", "text": "brown"}]
    reply = await chat(
        up, {"role": "user", "content": "hi"}, {"role": "assistant", "content": parts}
    )
    assert reply.json()["choices"][0]["message"]["content"] == " fox jumps over the lazy dog."


async def test_the_upstream_text_is_per_upstream(http) -> None:
    async with FakeUpstream("local", text="Hello.") as up:
        body = {"model": "m", "messages": [{"role": "user", "content": "hi"}]}
        async with http.post(up.base_url + "/chat/completions", json=body) as response:
            data = await response.json()
    assert data["choices"][0]["message"]["content"] == "Hello."


async def test_the_server_speaks_plain_http_on_loopback(up) -> None:
    assert up.base_url == f"http://127.0.0.1:{up.port}/v1"
    async with aiohttp.ClientSession() as session, session.get(up.base_url + "/models") as r:
        assert r.status == 200
