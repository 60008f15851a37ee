"""Where a provider sends its requests, whatever form its base_url was given in, and
what a 404 from a wrong path says (the URL tried, never a secret)."""

from __future__ import annotations

import logging

import pytest
import structlog

from bastion.models.anthropic import AnthropicChatModel
from bastion.models.openai import OpenAIChatModel
from bastion.resilience.errors import ErrorKind, UpstreamError
from bastion.types import chat

ANTHROPIC_ANSWER = {
    "id": "msg_01",
    "type": "message",
    "role": "assistant",
    "model": "claude-x",
    "content": [{"type": "text", "text": "Hello"}],
    "stop_reason": "end_turn",
    "usage": {"input_tokens": 2, "output_tokens": 1},
}
OPENAI_ANSWER = {
    "id": "chatcmpl-1",
    "object": "chat.completion",
    "model": "m",
    "choices": [{"index": 0, "message": {"role": "assistant", "content": "Hello"}}],
}


@pytest.mark.parametrize("path", ["", "/", "/v1", "/v1/"])
async def test_anthropic_base_url_with_or_without_v1_reaches_the_messages_api(
    upstream, session, path
) -> None:
    upstream.on("/v1/messages", upstream.json(200, ANTHROPIC_ANSWER))
    upstream.on("/v1/models", upstream.json(200, {"data": []}))
    model = AnthropicChatModel(upstream.endpoint("anthropic", path=path), session=session)
    assert (await model.complete(chat("hi"))).text == "Hello"
    await model.probe("http")
    assert [r.path for r in upstream.requests] == ["/v1/messages", "/v1/models"]


@pytest.mark.parametrize("path", ["", "/", "/v1", "/v1/"])
async def test_openai_bare_host_gets_v1_and_a_v1_base_is_kept(upstream, session, path) -> None:
    upstream.on("/v1/chat/completions", upstream.json(200, OPENAI_ANSWER))
    model = OpenAIChatModel(upstream.endpoint("openai", path=path), session=session)
    assert (await model.complete(chat("hi"))).text == "Hello"
    assert upstream.last.path == "/v1/chat/completions"


async def test_openai_base_url_with_its_own_prefix_is_taken_as_given(upstream, session) -> None:
    upstream.on("/openai/v1/chat/completions", upstream.json(200, OPENAI_ANSWER))
    model = OpenAIChatModel(upstream.endpoint("openai", path="/openai/v1"), session=session)
    assert (await model.complete(chat("hi"))).text == "Hello"


async def test_a_404_from_a_wrong_path_names_the_url_tried_without_secrets(
    upstream, session
) -> None:
    # No handler for this path: the test server answers 404.
    endpoint = upstream.endpoint("openai", path="/wrong/prefix")
    model = OpenAIChatModel(endpoint, session=session)
    logs: list[dict] = []
    structlog.configure(
        processors=[lambda _l, _m, event: logs.append(event) or ""],
        wrapper_class=structlog.make_filtering_bound_logger(logging.WARNING),
    )
    try:
        with pytest.raises(UpstreamError) as caught:
            await model.complete(chat("hi"))
        with pytest.raises(UpstreamError):
            await model.complete(chat("hi"))
    finally:
        structlog.reset_defaults()
    error = caught.value
    assert error.kind is ErrorKind.NOT_FOUND and error.status == 404
    assert f"POST {upstream.url}/wrong/prefix/chat/completions" in error.message
    assert upstream.api_key not in str(error)
    assert [(e["endpoint"], e["url"]) for e in logs] == [
        (endpoint.id, f"{upstream.url}/wrong/prefix/chat/completions")
    ]
    assert upstream.api_key not in repr(logs)
