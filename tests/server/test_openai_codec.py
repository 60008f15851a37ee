"""The gateway's reading of OpenAI request bodies: what passes, and what each error names."""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from bastion.server.errors import ApiError
from bastion.server.openai.codec import ChunkWriter, completion_body, parse_chat, usage_json
from bastion.types import (
    ChatResponse,
    Message,
    StreamFinish,
    TextDelta,
    ToolCall,
    ToolCallDelta,
    Usage,
)


def body(**fields) -> bytes:
    base = {"model": "chat", "messages": [{"role": "user", "content": "hi"}]}
    base.update(fields)
    return orjson.dumps({k: v for k, v in base.items() if v is not ...})


def test_minimal_body_parses_and_unknown_fields_pass_through():
    parsed = parse_chat(body(seed=7, response_format={"type": "json_object"}, user="u1"))
    assert parsed.model == "chat" and not parsed.stream
    assert parsed.request.messages == (Message("user", "hi"),)
    assert parsed.request.extra == {
        "seed": 7,
        "response_format": {"type": "json_object"},
        "user": "u1",
    }


def test_full_conversation_with_tools_parses():
    messages = [
        {"role": "developer", "content": "be brief"},
        {
            "role": "user",
            "content": [{"type": "text", "text": "weather "}, {"type": "text", "text": "in Oslo?"}],
        },
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {"id": "c1", "type": "function", "function": {"name": "weather", "arguments": "{}"}}
            ],
        },
        {"role": "tool", "tool_call_id": "c1", "content": "cold"},
    ]
    tools = [
        {"type": "function", "function": {"name": "weather", "parameters": {"type": "object"}}}
    ]
    parsed = parse_chat(
        body(
            messages=messages,
            tools=tools,
            tool_choice="auto",
            stream=True,
            stream_options={"include_usage": True},
        )
    )
    request = parsed.request
    assert [m.role for m in request.messages] == ["system", "user", "assistant", "tool"]
    assert request.messages[1].content == "weather in Oslo?"
    assert request.messages[2].tool_calls == (ToolCall("c1", "weather", "{}"),)
    assert request.tools[0].name == "weather" and request.tool_choice == "auto"
    assert parsed.stream and parsed.include_usage
    assert "stream_options" not in request.extra


@pytest.mark.parametrize(
    ("raw", "param"),
    [
        (body(model=...), "model"),
        (body(model=3), "model"),
        (body(messages=[]), "messages"),
        (body(messages="hi"), "messages"),
        (body(messages=[{"role": "robot", "content": "x"}]), "messages[0].role"),
        (body(messages=[{"role": "user"}]), "messages[0].content"),
        (body(messages=[{"role": "user", "content": 5}]), "messages[0].content"),
        (
            body(messages=[{"role": "user", "content": [{"type": "image_url"}]}]),
            "messages[0].content[0].image_url",
        ),
        (
            body(messages=[{"role": "user", "content": [{"type": "video"}]}]),
            "messages[0].content[0].type",
        ),
        (body(messages=[{"role": "tool", "content": "x"}]), "messages[0].tool_call_id"),
        (body(max_completion_tokens=0), "max_completion_tokens"),
        (body(max_completion_tokens="9"), "max_completion_tokens"),
        (body(stream="yes"), "stream"),
        (body(temperature=3), "temperature"),
        (body(temperature=True), "temperature"),
        (body(max_tokens=0), "max_tokens"),
        (body(tools=[{"type": "function", "function": {}}]), "tools[0].function.name"),
        (body(tool_choice=3), "tool_choice"),
    ],
)
def test_invalid_field_is_a_400_naming_it(raw, param):
    with pytest.raises(ApiError) as caught:
        parse_chat(raw)
    error = caught.value
    assert error.status == 400 and error.param == param and param in error.message


@pytest.mark.parametrize("raw", [b"{not json", b"[1, 2]", b"", "\u00e9".encode("latin-1")])
def test_body_that_is_not_a_json_object_is_a_400(raw):
    with pytest.raises(ApiError) as caught:
        parse_chat(raw)
    assert caught.value.status == 400 and caught.value.code == "invalid_json"


def test_completion_body_is_openai_shaped():
    answer = ChatResponse(
        message=Message("assistant", None, (ToolCall("c1", "f", '{"a":1}'),)),
        finish_reason="tool_calls",
        usage=Usage(3, 4),
        model="gpt-x",
    )
    decoded = orjson.loads(completion_body(answer, "r1"))
    assert decoded["object"] == "chat.completion" and decoded["model"] == "gpt-x"
    choice = decoded["choices"][0]
    assert choice["finish_reason"] == "tool_calls"
    assert choice["message"]["tool_calls"][0]["function"] == {"name": "f", "arguments": '{"a":1}'}
    assert decoded["usage"] == {"prompt_tokens": 3, "completion_tokens": 4, "total_tokens": 7}


def upstream_answer(**changes: Any) -> dict[str, Any]:
    choice = {
        "index": 0,
        "message": {"role": "assistant", "content": "Hi."},
        "logprobs": {"content": [{"token": "Hi", "logprob": -0.1}]},
        "finish_reason": "eos",
    }
    return {
        "id": "chatcmpl-up1",
        "object": "chat.completion",
        "model": "gpt-x-2025",
        "system_fingerprint": "fp_1",
        "choices": [choice, {**choice, "index": 1}],
        "usage": {
            "prompt_tokens": 3,
            "completion_tokens": 2,
            "total_tokens": 5,
            "prompt_tokens_details": {"cached_tokens": 2},
        },
        **changes,
    }


def test_an_openai_compatible_answer_goes_back_as_the_upstream_gave_it():
    raw = upstream_answer()
    answer = ChatResponse(Message("assistant", "Hi."), "stop", Usage(3, 2), "gpt-x-2025", raw=raw)
    decoded = orjson.loads(completion_body(answer, "r1"))
    # Only choice 0's finish reason is read the way Bastion reads it ("eos" is a stop).
    assert decoded["choices"][0]["finish_reason"] == "stop"
    decoded["choices"][0]["finish_reason"] = "eos"
    assert decoded == raw


def test_answers_not_in_openai_shape_are_built_from_the_answer():
    parts = upstream_answer(
        choices=[{"index": 0, "message": {"content": [{"type": "text", "text": "Hi."}]}}]
    )
    anthropic = {"type": "message", "content": [{"type": "text", "text": "Hi."}]}
    for raw, degraded in ((parts, False), (anthropic, False), (upstream_answer(), True)):
        answer = ChatResponse(
            Message("assistant", "Hi."), "stop", Usage(3, 2), "m", raw=raw, degraded=degraded
        )
        decoded = orjson.loads(completion_body(answer, "r1"))
        assert decoded["id"] == "chatcmpl-r1"
        assert decoded["choices"] == [
            {
                "index": 0,
                "message": {"role": "assistant", "content": "Hi."},
                "finish_reason": "stop",
            }
        ]


def test_usage_details_are_written_only_when_known():
    assert usage_json(Usage(3, 4)) == {
        "prompt_tokens": 3,
        "completion_tokens": 4,
        "total_tokens": 7,
    }
    assert usage_json(Usage(3, 4, cached_tokens=2, reasoning_tokens=0)) == {
        "prompt_tokens": 3,
        "completion_tokens": 4,
        "total_tokens": 7,
        "prompt_tokens_details": {"cached_tokens": 2},
        "completion_tokens_details": {"reasoning_tokens": 0},
    }


def test_chunks_decode_as_openai_stream_chunks():
    writer = ChunkWriter("r1", "gpt-x")
    raw = (
        writer.text(TextDelta("Hel"))
        + writer.text(TextDelta("lo"))
        + writer.tool_call(ToolCallDelta(0, "c1", "f", "{}"))
        + writer.finish(StreamFinish("stop", Usage(1, 2)), include_usage=True)
    )
    events = [line[6:] for line in raw.decode().split("\n\n") if line]
    assert events[-1] == "[DONE]"
    chunks = [orjson.loads(e) for e in events[:-1]]
    assert chunks[0]["choices"][0]["delta"] == {"role": "assistant", "content": "Hel"}
    assert chunks[1]["choices"][0]["delta"] == {"content": "lo"}
    assert chunks[2]["choices"][0]["delta"]["tool_calls"][0]["function"]["name"] == "f"
    assert chunks[3]["choices"][0]["finish_reason"] == "stop"
    assert chunks[4]["choices"] == [] and chunks[4]["usage"]["total_tokens"] == 3
    assert all(c["id"] == "chatcmpl-r1" and c["model"] == "gpt-x" for c in chunks)


@pytest.mark.parametrize("role", [{}, [], None, 3])
def test_role_of_the_wrong_type_is_a_400_not_a_crash(role):
    with pytest.raises(ApiError) as caught:
        parse_chat(body(messages=[{"role": role, "content": "x"}]))
    assert caught.value.param == "messages[0].role"


def test_max_completion_tokens_goes_upstream_under_its_own_name():
    parsed = parse_chat(body(max_completion_tokens=64))
    assert parsed.request.max_tokens is None
    assert parsed.request.extra == {"max_completion_tokens": 64}
