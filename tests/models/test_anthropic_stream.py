"""AnthropicChatModel.stream over loopback HTTP: Messages API events in, our stream
events out; in-band errors and cut streams end in StreamBroken."""

from __future__ import annotations

import asyncio

import orjson
import pytest

from bastion.models.anthropic import AnthropicChatModel
from bastion.resilience.errors import ErrorKind, StreamBroken
from bastion.types import StreamFinish, TextDelta, ToolCallDelta, Usage, assistant, chat, user

PATH = "/v1/messages"


@pytest.fixture
def model(upstream, session) -> AnthropicChatModel:
    return AnthropicChatModel(upstream.endpoint("anthropic", path=""), session=session)


def start(input_tokens: int = 25) -> bytes:
    message = {
        "id": "msg_1",
        "type": "message",
        "role": "assistant",
        "content": [],
        "model": "claude-sonnet-4-20250514",
        "stop_reason": None,
        "stop_sequence": None,
        "usage": {"input_tokens": input_tokens, "output_tokens": 1},
    }
    return event("message_start", message=message)


def event(type_: str, **fields) -> bytes:
    return (
        f"event: {type_}\n".encode() + b"data: " + orjson.dumps({"type": type_, **fields}) + b"\n\n"
    )


def text_block(index: int) -> bytes:
    return event("content_block_start", index=index, content_block={"type": "text", "text": ""})


def text(index: int, piece: str) -> bytes:
    return event("content_block_delta", index=index, delta={"type": "text_delta", "text": piece})


def stop_block(index: int) -> bytes:
    return event("content_block_stop", index=index)


def message_delta(stop_reason: str | None, output_tokens: int = 15) -> bytes:
    delta = {"stop_reason": stop_reason, "stop_sequence": None}
    return event("message_delta", delta=delta, usage={"output_tokens": output_tokens})


PING = b'event: ping\ndata: {"type": "ping"}\n\n'
STOP = event("message_stop")


async def collect(model, request=None) -> list:
    return [e async for e in model.stream(request or chat("hi"))]


async def until_broken(model) -> tuple[list, StreamBroken]:
    """The events delivered before the stream broke, and how it broke."""
    events: list = []
    stream = model.stream(chat("hi"))
    with pytest.raises(StreamBroken) as caught:
        while True:
            events.append(await anext(stream))
    return events, caught.value


async def broken(model) -> StreamBroken:
    with pytest.raises(StreamBroken) as caught:
        await collect(model)
    assert caught.value.endpoint == "primary"
    return caught.value


async def test_text_stream_with_usage(upstream, model) -> None:
    upstream.on(
        PATH,
        upstream.sse(
            start(),
            text_block(0),
            PING,
            text(0, "Hello"),
            text(0, " world"),
            stop_block(0),
            message_delta("end_turn"),
            STOP,
        ),
    )
    assert await collect(model) == [
        TextDelta("Hello"),
        TextDelta(" world"),
        StreamFinish("stop", Usage(prompt_tokens=25, completion_tokens=15)),
    ]
    assert upstream.last.body["stream"] is True


async def test_tool_use_stream_numbers_calls_from_zero(upstream, model) -> None:
    tool = {"type": "tool_use", "id": "toolu_1", "name": "weather", "input": {}}
    args = [{"type": "input_json_delta", "partial_json": p} for p in ('{"city": ', '"Oslo"}')]
    no_args = {"type": "tool_use", "id": "toolu_2", "name": "time", "input": {}}
    upstream.on(
        PATH,
        upstream.sse(
            start(),
            text_block(0),
            text(0, "Checking."),
            stop_block(0),
            event("content_block_start", index=1, content_block=tool),
            event("content_block_delta", index=1, delta=args[0]),
            event("content_block_delta", index=1, delta=args[1]),
            stop_block(1),
            event("content_block_start", index=2, content_block=no_args),
            stop_block(2),
            message_delta("tool_use"),
            STOP,
        ),
    )
    assert await collect(model) == [
        TextDelta("Checking."),
        ToolCallDelta(index=0, id="toolu_1", name="weather"),
        ToolCallDelta(index=0, arguments='{"city": '),
        ToolCallDelta(index=0, arguments='"Oslo"}'),
        ToolCallDelta(index=1, id="toolu_2", name="time"),
        ToolCallDelta(index=1, arguments="{}"),  # a call without arguments still parses
        StreamFinish("tool_calls", Usage(25, 15)),
    ]


async def test_prefill_continuation_loses_its_leading_whitespace(upstream, model) -> None:
    upstream.on(
        PATH,
        upstream.sse(
            start(),
            text_block(0),
            text(0, " "),
            text(0, " world"),
            text(0, " again"),
            message_delta("end_turn"),
            STOP,
        ),
    )
    events = await collect(model, chat(user("Say hello"), assistant("Hello, ")))
    assert upstream.last.body["messages"][-1] == {"role": "assistant", "content": "Hello,"}
    assert events[:2] == [TextDelta("world"), TextDelta(" again")]


@pytest.mark.parametrize(
    ("error_type", "message", "kind"),
    [
        ("overloaded_error", "Overloaded", ErrorKind.UNAVAILABLE),
        ("rate_limit_error", "Too many requests", ErrorKind.RATE_LIMITED),
        ("api_error", "Internal server error", ErrorKind.SERVER_ERROR),
        ("invalid_request_error", "prompt is too long: 1 > 0", ErrorKind.CONTEXT_LENGTH),
    ],
)
async def test_error_event_mid_stream(upstream, model, error_type, message, kind) -> None:
    error = event("error", error={"type": error_type, "message": message})
    upstream.on(PATH, upstream.sse(start(), text_block(0), text(0, "Hi"), error))
    events, error = await until_broken(model)
    assert events == [TextDelta("Hi")]
    assert (error.kind, error.message) == (kind, message)


async def test_eof_before_message_stop_is_a_cut(upstream, model) -> None:
    upstream.on(
        PATH, upstream.sse(start(), text_block(0), text(0, "Hi"), message_delta("end_turn"))
    )
    error = await broken(model)
    assert (error.kind, error.message) == (ErrorKind.CONNECTION, "stream cut before its end")


async def test_message_stop_without_stop_reason_is_a_protocol_error(upstream, model) -> None:
    upstream.on(PATH, upstream.sse(start(), text_block(0), text(0, "Hi"), STOP))
    assert (await broken(model)).kind is ErrorKind.PROTOCOL


async def test_malformed_event_is_a_protocol_error(upstream, model) -> None:
    bad = b"event: content_block_delta\ndata: {oops\n\n"
    upstream.on(PATH, upstream.sse(start(), bad, message_delta("end_turn"), STOP))
    assert (await broken(model)).kind is ErrorKind.PROTOCOL


async def test_connection_dropped_mid_stream(upstream, model) -> None:
    upstream.on(PATH, upstream.sse(start(), text_block(0), text(0, "Hi"), end="drop"))
    assert (await broken(model)).kind is ErrorKind.CONNECTION


async def test_unknown_event_types_are_ignored(upstream, model) -> None:
    future = event("content_block_delta", index=0, delta={"type": "citations_delta"})
    novel = event("brand_new_event", whatever=1)
    upstream.on(
        PATH,
        upstream.sse(
            start(), text_block(0), future, novel, text(0, "Hi"), message_delta("max_tokens"), STOP
        ),
    )
    events = await collect(model)
    assert events == [TextDelta("Hi"), StreamFinish("length", Usage(25, 15))]


async def test_early_aclose_closes_the_upstream_connection(upstream, model) -> None:
    upstream.on(PATH, upstream.sse_until_client_leaves(start() + text_block(0) + text(0, "Hi")))
    stream = model.stream(chat("hi"))
    assert await anext(stream) == TextDelta("Hi")
    await stream.aclose()
    await asyncio.wait_for(upstream.disconnected.wait(), 2.0)
