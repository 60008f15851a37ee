"""LangChain's `ChatOpenAI` pointed at `bastion serve`, unchanged, with the primary down."""

from __future__ import annotations

import pytest
from gateway_support import FleetProcess, GatewayProcess, Keys
from langchain_openai import ChatOpenAI

from bastion.testing import DEFAULT_TEXT


@pytest.fixture
def chat_model(gateway: GatewayProcess, keys: Keys, fleet: FleetProcess) -> ChatOpenAI:
    fleet.set_default("primary", {"kind": "status", "code": 503})
    return ChatOpenAI(
        base_url=f"{gateway.url}/v1",
        api_key=keys.app,  # type: ignore[arg-type]
        model="chat",
        max_retries=0,
        timeout=10,
    )


def test_invoke_answers_while_the_primary_fails(
    chat_model: ChatOpenAI, fleet: FleetProcess
) -> None:
    message = chat_model.invoke("Tell me about the fox.")
    assert message.content == DEFAULT_TEXT
    assert set(fleet.outcomes("primary")) == {"status"}
    assert fleet.outcomes("secondary") == ["ok"]


def test_stream_answers_while_the_primary_fails(
    chat_model: ChatOpenAI, fleet: FleetProcess
) -> None:
    text = "".join(str(chunk.content) for chunk in chat_model.stream("Tell me about the fox."))
    assert text == DEFAULT_TEXT
    assert fleet.outcomes("secondary") == ["ok"]


async def test_async_stream_answers_while_the_primary_fails(chat_model: ChatOpenAI) -> None:
    chunks = [chunk async for chunk in chat_model.astream("Tell me about the fox.")]
    assert "".join(str(chunk.content) for chunk in chunks) == DEFAULT_TEXT
