"""AnthropicChatModel.complete and probe over loopback HTTP, and the request mapping
from our OpenAI-shaped types to the Messages API."""

from __future__ import annotations

import pytest

from bastion.models.anthropic import AnthropicChatModel
from bastion.models.anthropic_wire import finish_reason, tool_choice
from bastion.models.base import ChatModel, Closeable, HealthProbe
from bastion.resilience.errors import ErrorKind, UpstreamError
from bastion.types import ChatRequest, Message, ToolCall, ToolSpec, assistant, chat, system, user

PATH = "/v1/messages"

ANSWER = {
    "id": "msg_01",
    "type": "message",
    "role": "assistant",
    "model": "claude-sonnet-4-20250514",
    "content": [{"type": "text", "text": "Hello"}, {"type": "text", "text": " there."}],
    "stop_reason": "end_turn",
    "stop_sequence": None,
    "usage": {"input_tokens": 21, "output_tokens": 4},
}


@pytest.fixture
def model(upstream, session) -> AnthropicChatModel:
    return AnthropicChatModel(upstream.endpoint("anthropic", path=""), session=session)


def test_implements_the_protocols(upstream) -> None:
    model = AnthropicChatModel(upstream.endpoint("anthropic", path=""))
    assert isinstance(model, ChatModel)
    assert isinstance(model, HealthProbe)
    assert isinstance(model, Closeable)
    assert model.model_name == "test-model"


async def test_request_headers_and_minimal_body(upstream, model) -> None:
    upstream.on(PATH, upstream.json(200, ANSWER))
    await model.complete(chat("hi"))
    sent = upstream.last
    assert sent.headers["x-api-key"] == upstream.api_key
    assert sent.headers["anthropic-version"] == "2023-06-01"
    assert "authorization" not in sent.headers
    assert sent.body == {
        "model": "test-model",
        "max_tokens": 4096,
        "messages": [{"role": "user", "content": "hi"}],
    }


async def test_system_messages_go_top_level(upstream, model) -> None:
    upstream.on(PATH, upstream.json(200, ANSWER))
    await model.complete(chat(system("Be brief."), system("Be kind."), user("hi"), max_tokens=9))
    assert upstream.last.body["system"] == "Be brief.\n\nBe kind."
    assert upstream.last.body["messages"] == [{"role": "user", "content": "hi"}]
    assert upstream.last.body["max_tokens"] == 9


async def test_tool_calls_and_results_are_blocks(upstream, model) -> None:
    upstream.on(PATH, upstream.json(200, ANSWER))
    calls = (
        ToolCall(id="toolu_1", name="weather", arguments='{"city":"Paris"}'),
        ToolCall(id="toolu_2", name="time", arguments=""),
    )
    messages = (
        user("Weather and time?"),
        Message(role="assistant", content="Checking.", tool_calls=calls),
        Message(role="tool", content="sunny", tool_call_id="toolu_1"),
        Message(role="tool", content="noon", tool_call_id="toolu_2"),
        user("Thanks"),
    )
    await model.complete(ChatRequest(messages=messages))
    assert upstream.last.body["messages"] == [
        {"role": "user", "content": "Weather and time?"},
        {
            "role": "assistant",
            "content": [
                {"type": "text", "text": "Checking."},
                {
                    "type": "tool_use",
                    "id": "toolu_1",
                    "name": "weather",
                    "input": {"city": "Paris"},
                },
                {"type": "tool_use", "id": "toolu_2", "name": "time", "input": {}},
            ],
        },
        {
            "role": "user",
            "content": [
                {"type": "tool_result", "tool_use_id": "toolu_1", "content": "sunny"},
                {"type": "tool_result", "tool_use_id": "toolu_2", "content": "noon"},
            ],
        },
        {"role": "user", "content": "Thanks"},
    ]


async def test_malformed_tool_arguments_in_history_are_an_invalid_request(model) -> None:
    call = ToolCall(id="t", name="weather", arguments="{not json")
    request = ChatRequest(messages=(user("x"), Message(role="assistant", tool_calls=(call,))))
    with pytest.raises(UpstreamError) as caught:
        await model.complete(request)
    assert caught.value.kind is ErrorKind.INVALID_REQUEST


async def test_tools_choice_temperature_and_extra(upstream, model) -> None:
    upstream.on(PATH, upstream.json(200, ANSWER))
    tools = (
        ToolSpec("weather", "Weather for a city", {"type": "object"}),
        ToolSpec("noop"),
    )
    extra = {"response_format": {"type": "json_object"}, "top_p": 0.9, "stop": "END"}
    request = chat("hi", tools=tools, tool_choice="required", temperature=1.7, extra=extra)
    await model.complete(request)
    body = upstream.last.body
    assert body["tools"] == [
        {
            "name": "weather",
            "description": "Weather for a city",
            "input_schema": {"type": "object"},
        },
        {"name": "noop", "input_schema": {"type": "object"}},
    ]
    assert body["tool_choice"] == {"type": "any"}
    assert body["temperature"] == 1.0  # OpenAI's scale reaches 2, Anthropic's 1
    assert body["top_p"] == 0.9
    assert body["stop_sequences"] == ["END"]
    assert "response_format" not in body  # Anthropic rejects fields it does not know


@pytest.mark.parametrize(
    ("given", "sent"),
    [
        ("auto", {"type": "auto"}),
        ("required", {"type": "any"}),
        ("none", {"type": "none"}),
        (
            {"type": "function", "function": {"name": "weather"}},
            {"type": "tool", "name": "weather"},
        ),
        ({"type": "tool", "name": "weather"}, {"type": "tool", "name": "weather"}),
        (None, None),
    ],
)
def test_tool_choice_mapping(given, sent) -> None:
    assert tool_choice(given) == sent


# --- prefill --------------------------------------------------------------------------


async def test_prefill_loses_trailing_whitespace_and_answer_its_leading(upstream, model) -> None:
    answer = {**ANSWER, "content": [{"type": "text", "text": " world"}]}
    upstream.on(PATH, upstream.json(200, answer))
    response = await model.complete(chat(user("Say hello"), assistant("Hello, ")))
    assert upstream.last.body["messages"][-1] == {"role": "assistant", "content": "Hello,"}
    assert "Hello, " + response.text == "Hello, world"


async def test_prefill_without_trailing_whitespace_is_untouched(upstream, model) -> None:
    answer = {**ANSWER, "content": [{"type": "text", "text": " world"}]}
    upstream.on(PATH, upstream.json(200, answer))
    response = await model.complete(chat(user("Say hello"), assistant("Hello,")))
    assert upstream.last.body["messages"][-1] == {"role": "assistant", "content": "Hello,"}
    assert response.text == " world"


async def test_whitespace_only_prefill_is_dropped(upstream, model) -> None:
    upstream.on(PATH, upstream.json(200, ANSWER))
    await model.complete(chat(user("Say hello"), assistant("  \n")))
    assert upstream.last.body["messages"] == [{"role": "user", "content": "Say hello"}]


# --- answers --------------------------------------------------------------------------


async def test_answer_is_mapped(upstream, model) -> None:
    upstream.on(PATH, upstream.json(200, ANSWER))
    response = await model.complete(chat("hi"))
    assert response.text == "Hello there."
    assert response.finish_reason == "stop"
    assert (response.usage.prompt_tokens, response.usage.completion_tokens) == (21, 4)
    assert response.model == "claude-sonnet-4-20250514"
    assert response.endpoint == "primary"
    assert response.raw == ANSWER


async def test_tool_use_answer(upstream, model) -> None:
    answer = {
        **ANSWER,
        "content": [
            {"type": "text", "text": "Let me check."},
            {"type": "tool_use", "id": "toolu_9", "name": "weather", "input": {"city": "Oslo"}},
        ],
        "stop_reason": "tool_use",
        "usage": {"input_tokens": 5, "cache_read_input_tokens": 100, "output_tokens": 7},
    }
    upstream.on(PATH, upstream.json(200, answer))
    response = await model.complete(chat("hi"))
    assert response.text == "Let me check."
    assert response.message.tool_calls == (
        ToolCall(id="toolu_9", name="weather", arguments='{"city":"Oslo"}'),
    )
    assert response.finish_reason == "tool_calls"
    assert response.usage.prompt_tokens == 105  # cached prompt tokens count as prompt


@pytest.mark.parametrize(
    ("stop_reason", "expected"),
    [
        ("end_turn", "stop"),
        ("stop_sequence", "stop"),
        ("max_tokens", "length"),
        ("tool_use", "tool_calls"),
        ("refusal", "content_filter"),
        (None, "stop"),
        ("brand_new", "stop"),
    ],
)
def test_stop_reason_mapping(stop_reason, expected) -> None:
    assert finish_reason(stop_reason) == expected


# --- errors: real Anthropic error bodies ----------------------------------------------


def error_body(type_: str, message: str) -> dict:
    return {"type": "error", "error": {"type": type_, "message": message}}


@pytest.mark.parametrize(
    ("status", "body", "kind"),
    [
        (529, error_body("overloaded_error", "Overloaded"), ErrorKind.UNAVAILABLE),
        (
            400,
            error_body(
                "invalid_request_error", "prompt is too long: 210000 tokens > 200000 maximum"
            ),
            ErrorKind.CONTEXT_LENGTH,
        ),
        (401, error_body("authentication_error", "invalid x-api-key"), ErrorKind.AUTH),
        (500, error_body("api_error", "Internal server error"), ErrorKind.SERVER_ERROR),
    ],
)
async def test_error_statuses_are_classified(upstream, model, status, body, kind) -> None:
    upstream.on(PATH, upstream.json(status, body))
    with pytest.raises(UpstreamError) as caught:
        await model.complete(chat("hi"))
    assert (caught.value.kind, caught.value.status) == (kind, status)
    assert caught.value.message == body["error"]["message"]


async def test_429_with_retry_after(upstream, model) -> None:
    body = error_body("rate_limit_error", "Number of request tokens has exceeded your rate limit")
    upstream.on(PATH, upstream.json(429, body, {"retry-after": "12"}))
    with pytest.raises(UpstreamError) as caught:
        await model.complete(chat("hi"))
    assert (caught.value.kind, caught.value.retry_after) == (ErrorKind.RATE_LIMITED, 12.0)


# --- probes ---------------------------------------------------------------------------


async def test_http_probe_defaults_to_the_versioned_models_path(upstream, model) -> None:
    upstream.on("/v1/models", upstream.json(200, {"data": [], "has_more": False}))
    await model.probe("http", None, 1.0)  # no path configured: the provider default
    assert (upstream.last.method, upstream.last.path) == ("GET", "/v1/models")
    assert upstream.last.headers["x-api-key"] == upstream.api_key


async def test_completion_probe_asks_for_one_token(upstream, model) -> None:
    upstream.on(PATH, upstream.json(200, ANSWER))
    await model.probe("completion", "", 1.0)
    assert upstream.last.body["max_tokens"] == 1


async def test_own_session_is_closed_by_aclose(upstream) -> None:
    upstream.on(PATH, upstream.json(200, ANSWER))
    model = AnthropicChatModel(upstream.endpoint("anthropic", path=""))
    await model.complete(chat("hi"))
    await model.aclose()
    with pytest.raises(RuntimeError, match="closed"):
        await model.complete(chat("hi"))


PNG = "data:image/png;base64,iVBORw0KGgo="


async def test_images_and_pdfs_become_anthropic_blocks(upstream, model) -> None:
    upstream.on(PATH, upstream.json(200, ANSWER))
    parts = (
        {"type": "text", "text": "Compare these."},
        {"type": "image_url", "image_url": {"url": PNG}},
        {"type": "image_url", "image_url": {"url": "https://example.com/cat.png"}},
        {"type": "file", "file": {"file_data": "data:application/pdf;base64,JVBE"}},
    )
    await model.complete(ChatRequest((Message("user", "Compare these.", parts=parts),)))
    assert upstream.last.body["messages"] == [
        {
            "role": "user",
            "content": [
                {"type": "text", "text": "Compare these."},
                {
                    "type": "image",
                    "source": {"type": "base64", "media_type": "image/png", "data": "iVBORw0KGgo="},
                },
                {"type": "image", "source": {"type": "url", "url": "https://example.com/cat.png"}},
                {
                    "type": "document",
                    "source": {"type": "base64", "media_type": "application/pdf", "data": "JVBE"},
                },
            ],
        }
    ]


@pytest.mark.parametrize(
    "part",
    [
        {"type": "input_audio", "input_audio": {"data": "UklGRg==", "format": "wav"}},
        {"type": "file", "file": {"file_id": "file-1"}},
    ],
)
async def test_a_part_anthropic_cannot_take_is_the_callers_request_to_change(
    upstream, model, part
) -> None:
    with pytest.raises(UpstreamError) as refused:
        await model.complete(ChatRequest((Message("user", "", parts=(part,)),)))
    assert refused.value.kind is ErrorKind.INVALID_REQUEST
    assert part["type"] in refused.value.message
    assert upstream.requests == []


async def test_max_completion_tokens_is_the_limit_anthropic_gets(upstream, model) -> None:
    upstream.on(PATH, upstream.json(200, ANSWER))
    await model.complete(ChatRequest((Message("user", "hi"),), extra={"max_completion_tokens": 50}))
    assert upstream.last.body["max_tokens"] == 50
    assert "max_completion_tokens" not in upstream.last.body
