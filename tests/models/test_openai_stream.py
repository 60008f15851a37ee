"""OpenAIChatModel.stream over loopback HTTP: the good path, tool calls, usage, and
every way a 200 stream can lie — each must end in StreamBroken, never a clean finish."""

from __future__ import annotations

import asyncio

import pytest

from bastion.models.h1 import H1Pool
from bastion.models.openai import OpenAIChatModel
from bastion.resilience.errors import ErrorKind, StreamBroken, UpstreamError
from bastion.types import StreamFinish, TextDelta, ToolCallDelta, Usage, chat

PATH = "/v1/chat/completions"
DONE = b"data: [DONE]\n\n"


def chunk(
    delta: dict | None = None, finish: str | None = None, logprobs: dict | None = None, **more
) -> dict:
    """A chat.completion.chunk as OpenAI sends it."""
    body = {
        "id": "chatcmpl-1",
        "object": "chat.completion.chunk",
        "created": 1700000000,
        "model": "gpt-4o-mini-2024-07-18",
        "choices": [
            {"index": 0, "delta": delta or {}, "logprobs": logprobs, "finish_reason": finish}
        ],
    }
    body.update(more)
    return body


def usage_chunk(prompt: int = 9, completion: int = 2) -> dict:
    total = prompt + completion
    usage = {"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": total}
    return {"id": "chatcmpl-1", "object": "chat.completion.chunk", "choices": [], "usage": usage}


@pytest.fixture
def model(upstream, session) -> OpenAIChatModel:
    return OpenAIChatModel(upstream.endpoint(), session=session)


async def collect(model, request=None) -> list:
    return [event async for event in model.stream(request or chat("hi"))]


async def broken(model) -> StreamBroken:
    with pytest.raises(StreamBroken) as caught:
        await collect(model)
    assert caught.value.endpoint == "primary"
    return caught.value


def good_stream(upstream) -> list[bytes]:
    e = upstream.event
    return [
        e(chunk({"role": "assistant", "content": "", "refusal": None})),
        e(chunk({"content": "Hel"})),
        e(chunk({"content": "lo"})),
        e(chunk({}, finish="stop")),
        e(usage_chunk()),
        DONE,
    ]


async def test_text_then_one_finish_with_the_trailing_usage(upstream, model) -> None:
    upstream.on(PATH, upstream.sse(*good_stream(upstream)))
    events = await collect(model)
    # The role-only first chunk is dropped: the first event is the first token.
    assert events == [
        TextDelta("Hel"),
        TextDelta("lo"),
        StreamFinish("stop", Usage(prompt_tokens=9, completion_tokens=2)),
    ]


async def test_stream_request_asks_for_usage(upstream, model) -> None:
    upstream.on(PATH, upstream.sse(*good_stream(upstream)))
    await collect(model)
    sent = upstream.last
    assert sent.body["stream"] is True
    assert sent.body["stream_options"] == {"include_usage": True}
    assert sent.headers["accept"] == "text/event-stream"


async def test_stream_options_given_in_extra_are_kept(upstream, model) -> None:
    upstream.on(PATH, upstream.sse(*good_stream(upstream)))
    await collect(model, chat("hi", extra={"stream_options": {"include_usage": False}}))
    assert upstream.last.body["stream_options"] == {"include_usage": False}


async def test_tool_call_deltas(upstream, model) -> None:
    e = upstream.event
    call_start = {
        "index": 0,
        "id": "call_1",
        "type": "function",
        "function": {"name": "weather", "arguments": ""},
    }
    upstream.on(
        PATH,
        upstream.sse(
            e(chunk({"role": "assistant", "content": None, "tool_calls": [call_start]})),
            e(chunk({"tool_calls": [{"index": 0, "function": {"arguments": '{"city"'}}]})),
            e(chunk({"tool_calls": [{"index": 0, "function": {"arguments": ':"Oslo"}'}}]})),
            e(chunk({"tool_calls": [{"index": 1, "id": "call_2", "function": {"name": "t"}}]})),
            e(chunk({}, finish="tool_calls")),
            DONE,
        ),
    )
    assert await collect(model) == [
        ToolCallDelta(index=0, id="call_1", name="weather"),
        ToolCallDelta(index=0, arguments='{"city"'),
        ToolCallDelta(index=0, arguments=':"Oslo"}'),
        ToolCallDelta(index=1, id="call_2", name="t"),
        StreamFinish("tool_calls", None),
    ]


async def test_usage_in_the_finish_chunk_is_read_too(upstream, model) -> None:
    e = upstream.event
    usage = {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2}
    upstream.on(
        PATH,
        upstream.sse(e(chunk({"content": "x"})), e(chunk({}, "length", usage=usage)), DONE),
    )
    assert (await collect(model))[-1] == StreamFinish("length", Usage(1, 1))


# --- streams that lie -----------------------------------------------------------------


async def test_malformed_chunk_is_a_protocol_error(upstream, model) -> None:
    e = upstream.event
    upstream.on(PATH, upstream.sse(e(chunk({"content": "x"})), b"data: {not json\n\n", DONE))
    assert (await broken(model)).kind is ErrorKind.PROTOCOL


async def test_eof_without_done_after_a_finish_reason_finishes(upstream, model) -> None:
    e = upstream.event
    upstream.on(PATH, upstream.sse(e(chunk({"content": "x"})), e(chunk({}, finish="stop"))))
    assert await collect(model) == [TextDelta("x"), StreamFinish("stop", None)]


async def test_eof_without_done_or_finish_reason_is_a_cut(upstream, model) -> None:
    upstream.on(PATH, upstream.sse(upstream.event(chunk({"content": "x"}))))
    error = await broken(model)
    assert error.kind is ErrorKind.CONNECTION
    assert error.message == "stream cut before its end"


async def test_done_without_a_finish_reason_is_a_protocol_error(upstream, model) -> None:
    upstream.on(PATH, upstream.sse(upstream.event(chunk({"content": "x"})), DONE))
    error = await broken(model)
    assert error.kind is ErrorKind.PROTOCOL
    assert error.message == "stream ended without a finish reason"


async def test_in_band_error_chunk(upstream, model) -> None:
    e = upstream.event
    error = {"error": {"message": "The server is overloaded", "type": "server_error"}}
    upstream.on(PATH, upstream.sse(e(chunk({"content": "x"})), e(error)))
    stream = model.stream(chat("hi"))
    assert await anext(stream) == TextDelta("x")  # what came before the error is delivered
    with pytest.raises(StreamBroken) as caught:
        await anext(stream)
    assert caught.value.kind is ErrorKind.UNAVAILABLE
    assert caught.value.message == "The server is overloaded"


async def test_in_band_error_event(upstream, model) -> None:
    e = upstream.event
    body = {"message": "Rate limit exceeded, slow down"}
    upstream.on(PATH, upstream.sse(e(chunk({"content": "x"})), e(body, event="error")))
    assert (await broken(model)).kind is ErrorKind.RATE_LIMITED


async def test_error_finish_reason_is_not_a_clean_end(upstream, model) -> None:
    e = upstream.event
    upstream.on(PATH, upstream.sse(e(chunk({"content": "x"})), e(chunk({}, "abort")), DONE))
    assert (await broken(model)).kind is ErrorKind.SERVER_ERROR


async def test_connection_dropped_mid_stream(upstream, model) -> None:
    e = upstream.event
    upstream.on(PATH, upstream.sse(e(chunk({"content": "x"})), end="drop"))
    error = await broken(model)
    assert error.kind is ErrorKind.CONNECTION


async def test_json_error_answered_to_a_stream_request(upstream, model) -> None:
    body = {"error": {"message": "prompt is too long for the context window"}}
    upstream.on(PATH, upstream.json(200, body))
    error = await broken(model)
    assert error.kind is ErrorKind.CONTEXT_LENGTH


async def test_non_2xx_before_the_stream_is_a_plain_upstream_error(upstream, model) -> None:
    body = {"error": {"message": "Rate limit reached", "type": "requests"}}
    upstream.on(PATH, upstream.json(429, body, {"retry-after-ms": "1500"}))
    with pytest.raises(UpstreamError) as caught:
        await collect(model)
    assert not isinstance(caught.value, StreamBroken)
    assert (caught.value.kind, caught.value.retry_after) == (ErrorKind.RATE_LIMITED, 1.5)


# --- the consumer leaves early --------------------------------------------------------


async def test_early_aclose_closes_the_upstream_connection(upstream, model) -> None:
    upstream.on(PATH, upstream.sse_until_client_leaves(upstream.event(chunk({"content": "x"}))))
    stream = model.stream(chat("hi"))
    assert await anext(stream) == TextDelta("x")
    await stream.aclose()
    await asyncio.wait_for(upstream.disconnected.wait(), 2.0)


async def test_cancelled_consumer_closes_the_upstream_connection(upstream, model) -> None:
    upstream.on(PATH, upstream.sse_until_client_leaves(upstream.event(chunk({"content": "x"}))))
    first = asyncio.Event()

    async def consume() -> None:
        async for _ in model.stream(chat("hi")):
            first.set()

    task = asyncio.create_task(consume())
    await asyncio.wait_for(first.wait(), 2.0)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    await asyncio.wait_for(upstream.disconnected.wait(), 2.0)


async def test_finished_streams_hold_no_connection(upstream, session) -> None:
    upstream.on(PATH, upstream.sse(*good_stream(upstream)))
    if isinstance(session, H1Pool):
        # One connection only: a stream that kept it would leave the next one waiting.
        single = H1Pool(limit=1)
        model = OpenAIChatModel(upstream.endpoint(), session=single)
        for _ in range(3):
            await asyncio.wait_for(collect(model), 2.0)
        await single.aclose()
        return
    model = OpenAIChatModel(upstream.endpoint(), session=session)
    await collect(model)
    await collect(model)
    connector = session.connector
    assert connector is not None
    # Nothing is held: a released connection is idle in the pool or closed, never leaked.
    assert sum(len(v) for v in connector._acquired_per_host.values()) == 0


async def test_stop_next_to_tool_calls_finishes_as_tool_calls(upstream, model) -> None:
    e = upstream.event
    call = {"index": 0, "id": "call_1", "function": {"name": "weather", "arguments": "{}"}}
    upstream.on(PATH, upstream.sse(e(chunk({"tool_calls": [call]})), e(chunk({}, "stop")), DONE))
    assert (await collect(model))[-1] == StreamFinish("tool_calls", None)


async def test_what_the_upstream_says_besides_the_text_is_kept(upstream, model) -> None:
    e = upstream.event
    logprobs = {"content": [{"token": "Hel", "logprob": -0.1, "bytes": [72, 101, 108]}]}
    usage = {
        "prompt_tokens": 9,
        "completion_tokens": 2,
        "total_tokens": 11,
        "completion_tokens_details": {"reasoning_tokens": 0, "audio_tokens": 0},
    }
    fingerprint = {"system_fingerprint": "fp_44709d6fcb", "service_tier": "default"}
    upstream.on(
        PATH,
        upstream.sse(
            e(chunk({"role": "assistant", "content": "", "refusal": None}, **fingerprint)),
            e(chunk({"content": "Hel"}, logprobs=logprobs, **fingerprint)),
            e(chunk({"refusal": "I can't"}, **fingerprint)),
            e(chunk({"refusal": " help."}, **fingerprint)),
            e(chunk({}, finish="stop", **fingerprint)),
            e({**usage_chunk(), "usage": usage}),
            DONE,
        ),
    )
    events = await collect(model)
    text, finish = events[0], events[-1]
    assert text == TextDelta("Hel", logprobs)
    assert text.info is not None and finish.info is not None
    assert (text.info.id, text.info.created, text.info.model) == (
        "chatcmpl-1",
        1700000000,
        "gpt-4o-mini-2024-07-18",
    )
    assert (text.info.system_fingerprint, text.info.service_tier) == ("fp_44709d6fcb", "default")
    assert finish.info.usage == usage and finish.info.refusal == "I can't help."
    assert finish.info.system_fingerprint == "fp_44709d6fcb"
