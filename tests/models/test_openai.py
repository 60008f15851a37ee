"""OpenAIChatModel.complete and probe over loopback HTTP: the request it sends, the
answer it maps, and the errors real OpenAI bodies become."""

from __future__ import annotations

import asyncio

import aiohttp
import pytest
from aiohttp import web

from bastion.models.base import ChatModel, Closeable, HealthProbe
from bastion.models.openai import OpenAIChatModel
from bastion.resilience.errors import ErrorKind, UpstreamError, UpstreamTimeout
from bastion.types import ChatRequest, Message, ToolCall, ToolSpec, assistant, chat, system, user

ANSWER = {
    "id": "chatcmpl-1",
    "object": "chat.completion",
    "created": 1700000000,
    "model": "gpt-4o-mini-2024-07-18",
    "choices": [
        {
            "index": 0,
            "message": {"role": "assistant", "content": "Hello there.", "refusal": None},
            "logprobs": None,
            "finish_reason": "stop",
        }
    ],
    "usage": {"prompt_tokens": 12, "completion_tokens": 3, "total_tokens": 15},
}

WEATHER = ToolSpec(
    name="weather",
    description="Weather for a city",
    parameters={"type": "object", "properties": {"city": {"type": "string"}}},
)


@pytest.fixture
def model(upstream, session) -> OpenAIChatModel:
    return OpenAIChatModel(upstream.endpoint(), session=session)


def test_implements_the_protocols(upstream) -> None:
    model = OpenAIChatModel(upstream.endpoint())
    assert isinstance(model, ChatModel)
    assert isinstance(model, HealthProbe)
    assert isinstance(model, Closeable)
    assert model.model_name == "test-model"


async def test_request_carries_model_messages_tools_and_auth(upstream, model) -> None:
    upstream.on("/v1/chat/completions", upstream.json(200, ANSWER))
    request = ChatRequest(
        messages=(system("Be brief."), user("Weather in Paris?")),
        tools=(WEATHER,),
        tool_choice="auto",
        temperature=0.2,
        max_tokens=50,
    )
    await model.complete(request)

    sent = upstream.last
    assert sent.method == "POST"
    assert sent.headers["authorization"] == f"Bearer {upstream.api_key}"
    assert sent.headers["content-type"] == "application/json"
    assert sent.body == {
        "model": "test-model",
        "messages": [
            {"role": "system", "content": "Be brief."},
            {"role": "user", "content": "Weather in Paris?"},
        ],
        "tools": [
            {
                "type": "function",
                "function": {
                    "name": "weather",
                    "description": "Weather for a city",
                    "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
                },
            }
        ],
        "tool_choice": "auto",
        "temperature": 0.2,
        "max_tokens": 50,
    }


async def test_none_fields_are_omitted_and_extra_passes_through(upstream, model) -> None:
    upstream.on("/v1/chat/completions", upstream.json(200, ANSWER))
    extra = {"response_format": {"type": "json_object"}, "seed": 7, "stream": True}
    await model.complete(chat("hi", extra=extra))
    assert upstream.last.body == {
        "model": "test-model",
        "messages": [{"role": "user", "content": "hi"}],
        "response_format": {"type": "json_object"},
        "seed": 7,  # `stream` is not: complete() never streams
    }


async def test_endpoint_headers_are_added_and_no_key_means_no_auth(upstream, session) -> None:
    upstream.on("/v1/chat/completions", upstream.json(200, ANSWER))
    endpoint = upstream.endpoint(api_key=None, headers=(("X-Tenant", "acme"),))
    await OpenAIChatModel(endpoint, session=session).complete(chat("hi"))
    assert upstream.last.headers["x-tenant"] == "acme"
    assert "authorization" not in upstream.last.headers


async def test_tool_history_and_trailing_assistant_prefill_are_sent_as_given(
    upstream, model
) -> None:
    upstream.on("/v1/chat/completions", upstream.json(200, ANSWER))
    call = ToolCall(id="call_1", name="weather", arguments='{"city":"Paris"}')
    messages = (
        user("Weather?"),
        Message(role="assistant", tool_calls=(call,)),
        Message(role="tool", content="sunny", tool_call_id="call_1"),
        assistant("It is "),
    )
    await model.complete(ChatRequest(messages=messages))
    assert upstream.last.body["messages"][1:] == [
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {
                    "id": "call_1",
                    "type": "function",
                    "function": {"name": "weather", "arguments": '{"city":"Paris"}'},
                }
            ],
        },
        {"role": "tool", "content": "sunny", "tool_call_id": "call_1"},
        {"role": "assistant", "content": "It is "},
    ]


async def test_answer_is_mapped(upstream, model) -> None:
    upstream.on("/v1/chat/completions", upstream.json(200, ANSWER))
    response = await model.complete(chat("hi"))
    assert response.text == "Hello there."
    assert response.finish_reason == "stop"
    assert (response.usage.prompt_tokens, response.usage.completion_tokens) == (12, 3)
    assert response.model == "gpt-4o-mini-2024-07-18"
    assert response.endpoint == "primary"
    assert response.raw == ANSWER


async def test_token_details_are_read_and_unreported_ones_stay_unknown(upstream, model) -> None:
    usage = {
        "prompt_tokens": 12,
        "completion_tokens": 30,
        "total_tokens": 42,
        "prompt_tokens_details": {"cached_tokens": 8, "audio_tokens": 0},
        "completion_tokens_details": {"reasoning_tokens": 24},
    }
    upstream.on("/v1/chat/completions", upstream.json(200, {**ANSWER, "usage": usage}))
    detailed = (await model.complete(chat("hi"))).usage
    assert (detailed.cached_tokens, detailed.reasoning_tokens) == (8, 24)
    upstream.on("/v1/chat/completions", upstream.json(200, ANSWER))
    plain = (await model.complete(chat("hi"))).usage
    assert (plain.cached_tokens, plain.reasoning_tokens) == (None, None)
    assert (detailed + plain).cached_tokens == 8
    assert (plain + plain).cached_tokens is None


async def test_tool_calls_are_mapped(upstream, model) -> None:
    answer = {
        "model": "m",
        "choices": [
            {
                "index": 0,
                "message": {
                    "role": "assistant",
                    "content": None,
                    "tool_calls": [
                        {
                            "id": "call_abc",
                            "type": "function",
                            "function": {"name": "weather", "arguments": '{"city":"Oslo"}'},
                        }
                    ],
                },
                "finish_reason": "tool_calls",
            }
        ],
    }
    upstream.on("/v1/chat/completions", upstream.json(200, answer))
    response = await model.complete(chat("hi"))
    assert response.message.content is None
    assert response.message.tool_calls == (
        ToolCall(id="call_abc", name="weather", arguments='{"city":"Oslo"}'),
    )
    assert response.finish_reason == "tool_calls"
    assert response.usage.total_tokens == 0  # no usage reported


@pytest.mark.parametrize(
    ("reported", "expected"),
    [("function_call", "tool_calls"), (None, "stop"), ("eos", "stop"), ("something_new", "stop")],
)
async def test_finish_reasons_are_normalised(upstream, model, reported, expected) -> None:
    answer = {"choices": [{"message": {"content": "x"}, "finish_reason": reported}]}
    upstream.on("/v1/chat/completions", upstream.json(200, answer))
    assert (await model.complete(chat("hi"))).finish_reason == expected


async def test_model_falls_back_to_the_endpoint_model(upstream, model) -> None:
    answer = {"choices": [{"message": {"content": "x"}, "finish_reason": "stop"}]}
    upstream.on("/v1/chat/completions", upstream.json(200, answer))
    assert (await model.complete(chat("hi"))).model == "test-model"


async def test_200_with_invalid_json_is_a_protocol_error(upstream, model) -> None:
    upstream.on("/v1/chat/completions", upstream.json(200, b"<html>gateway</html>"))
    with pytest.raises(UpstreamError) as caught:
        await model.complete(chat("hi"))
    assert caught.value.kind is ErrorKind.PROTOCOL
    assert caught.value.status == 200


async def test_200_without_choices_is_a_protocol_error(upstream, model) -> None:
    upstream.on("/v1/chat/completions", upstream.json(200, {"id": "x", "choices": []}))
    with pytest.raises(UpstreamError) as caught:
        await model.complete(chat("hi"))
    assert caught.value.kind is ErrorKind.PROTOCOL


async def test_aborted_finish_is_not_presented_as_an_answer(upstream, model) -> None:
    answer = {"choices": [{"message": {"content": "half an ans"}, "finish_reason": "abort"}]}
    upstream.on("/v1/chat/completions", upstream.json(200, answer))
    with pytest.raises(UpstreamError) as caught:
        await model.complete(chat("hi"))
    assert caught.value.kind is ErrorKind.SERVER_ERROR


# --- errors: real OpenAI error bodies -------------------------------------------------


def error_body(message: str, type_: str, code: str | None = None) -> dict:
    return {"error": {"message": message, "type": type_, "param": None, "code": code}}


@pytest.mark.parametrize(
    ("status", "body", "kind"),
    [
        (
            400,
            error_body(
                "This model's maximum context length is 128000 tokens. However, your messages "
                "resulted in 130000 tokens. Please reduce the length of the messages.",
                "invalid_request_error",
                "context_length_exceeded",
            ),
            ErrorKind.CONTEXT_LENGTH,
        ),
        (
            429,
            error_body(
                "You exceeded your current quota, please check your plan and billing details.",
                "insufficient_quota",
                "insufficient_quota",
            ),
            ErrorKind.QUOTA_EXCEEDED,
        ),
        (
            404,
            error_body(
                "The model `gpt-9` does not exist or you do not have access to it.",
                "invalid_request_error",
                "model_not_found",
            ),
            ErrorKind.NOT_FOUND,
        ),
        (
            500,
            error_body(
                "The server had an error while processing your request. Sorry about that!",
                "server_error",
            ),
            ErrorKind.SERVER_ERROR,
        ),
        (
            503,
            error_body(
                "The engine is currently overloaded, please try again later", "server_error"
            ),
            ErrorKind.UNAVAILABLE,
        ),
    ],
)
async def test_error_statuses_are_classified(upstream, model, status, body, kind) -> None:
    upstream.on("/v1/chat/completions", upstream.json(status, body))
    with pytest.raises(UpstreamError) as caught:
        await model.complete(chat("hi"))
    error = caught.value
    assert (error.kind, error.status, error.endpoint) == (kind, status, "primary")
    # Its own words first; a 404 also names the URL tried (a base_url may be wrong).
    assert error.message.startswith(body["error"]["message"])
    assert body["error"]["message"] in error.body


async def test_429_carries_retry_after_and_lower_cased_headers(upstream, model) -> None:
    body = error_body(
        "Rate limit reached for gpt-4o-mini on requests per min (RPM): Limit 3, Used 3.",
        "requests",
        "rate_limit_exceeded",
    )
    headers = {"Retry-After": "7", "X-RateLimit-Remaining-Requests": "0"}
    upstream.on("/v1/chat/completions", upstream.json(429, body, headers))
    with pytest.raises(UpstreamError) as caught:
        await model.complete(chat("hi"))
    error = caught.value
    assert error.kind is ErrorKind.RATE_LIMITED
    assert error.retry_after == 7.0
    assert error.headers["x-ratelimit-remaining-requests"] == "0"
    assert error.message.startswith("Rate limit reached")


async def test_error_without_json_body_still_has_status_and_message(upstream, model) -> None:
    upstream.on("/v1/chat/completions", upstream.json(502, b"Bad Gateway"))
    with pytest.raises(UpstreamError) as caught:
        await model.complete(chat("hi"))
    assert caught.value.kind is ErrorKind.UNAVAILABLE
    assert caught.value.message == "HTTP 502 Bad Gateway"
    assert caught.value.body == "Bad Gateway"


async def test_api_key_echoed_by_the_upstream_is_redacted(upstream, model) -> None:
    body = error_body(f"Incorrect API key provided: {upstream.api_key}.", "invalid_request_error")
    upstream.on("/v1/chat/completions", upstream.json(401, body))
    with pytest.raises(UpstreamError) as caught:
        await model.complete(chat("hi"))
    error = caught.value
    assert error.kind is ErrorKind.AUTH
    for text in (str(error), error.message, error.body, repr(error.args)):
        assert upstream.api_key not in text
    assert "***" in error.message


# --- probes ---------------------------------------------------------------------------


async def test_http_probe_gets_models_with_auth(upstream, model) -> None:
    upstream.on("/v1/models", upstream.json(200, {"object": "list", "data": []}))
    await model.probe("http", "/models", 1.0)
    assert (upstream.last.method, upstream.last.path) == ("GET", "/v1/models")
    assert upstream.last.headers["authorization"] == f"Bearer {upstream.api_key}"


async def test_http_probe_raises_for_a_non_2xx(upstream, model) -> None:
    upstream.on("/v1/models", upstream.json(503, error_body("down", "server_error")))
    with pytest.raises(UpstreamError) as caught:
        await model.probe("http", "/models", 1.0)
    assert caught.value.kind is ErrorKind.UNAVAILABLE


async def test_completion_probe_asks_for_one_token(upstream, model) -> None:
    upstream.on("/v1/chat/completions", upstream.json(200, ANSWER))
    await model.probe("completion", "/models", 1.0)
    assert upstream.last.body["max_tokens"] == 1


async def test_probe_is_bounded_by_its_timeout(upstream, model) -> None:
    upstream.on("/v1/models", upstream.hang())
    with pytest.raises(UpstreamTimeout) as caught:
        await model.probe("http", "/models", 0.05)
    assert caught.value.phase == "total"


# --- session ownership ----------------------------------------------------------------


async def test_own_pool_holds_max_concurrency_connections_and_closes(upstream) -> None:
    running = peak = 0

    async def slow(request: web.Request) -> web.Response:
        nonlocal running, peak
        running += 1
        peak = max(peak, running)
        await asyncio.sleep(0.05)
        running -= 1
        return web.json_response(ANSWER)

    upstream.on("/v1/chat/completions", slow)
    model = OpenAIChatModel(upstream.endpoint(max_concurrency=3))
    answers = await asyncio.gather(*(model.complete(chat("hi")) for _ in range(7)))
    assert [a.text for a in answers] == ["Hello there."] * 7
    assert peak == 3
    await model.aclose()
    with pytest.raises(RuntimeError, match="closed"):
        await model.complete(chat("hi"))
    await model.aclose()  # idempotent


async def test_injected_session_is_used_and_left_open(upstream) -> None:
    upstream.on("/v1/chat/completions", upstream.json(200, ANSWER))
    async with aiohttp.ClientSession() as session:
        model = OpenAIChatModel(upstream.endpoint(), session=session)
        await model.complete(chat("hi"))
        await model.aclose()
        assert not session.closed


async def test_extra_cannot_change_the_model_or_override_typed_fields(upstream, model) -> None:
    upstream.on("/v1/chat/completions", upstream.json(200, ANSWER))
    await model.complete(chat("hi", temperature=0.5, extra={"model": "other", "temperature": 2}))
    assert (upstream.last.body["model"], upstream.last.body["temperature"]) == ("test-model", 0.5)
