"""The official `openai` package against `bastion serve`: answers, invisible failover,
streams cut mid-answer, and errors as the SDK's typed exceptions. `max_retries=0`, so
whatever the client sees is what the gateway answered, not the SDK's own retries."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from typing import Any

import openai
import pytest
from gateway_support import QUESTION, FleetProcess, GatewayProcess, Keys

from bastion.testing import DEFAULT_TEXT

FAULTS = {"503": {"kind": "status", "code": 503}, "reset": {"kind": "reset"}}


@pytest.fixture
def client(gateway: GatewayProcess, keys: Keys) -> Iterator[openai.OpenAI]:
    with openai.OpenAI(
        base_url=f"{gateway.url}/v1", api_key=keys.app, max_retries=0, timeout=10
    ) as sdk:
        yield sdk


@pytest.fixture
async def aclient(gateway: GatewayProcess, keys: Keys) -> AsyncIterator[openai.AsyncOpenAI]:
    async with openai.AsyncOpenAI(
        base_url=f"{gateway.url}/v1", api_key=keys.app, max_retries=0, timeout=10
    ) as sdk:
        yield sdk


def fault_kind(fault: str) -> str:
    return str(FAULTS[fault]["kind"])


def streamed_text(chunks: Any) -> str:
    return "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)


# --- answers -----------------------------------------------------------------------------


def test_sync_client_gets_an_answer(client: openai.OpenAI, fleet: FleetProcess) -> None:
    answer = client.chat.completions.create(model="chat", messages=QUESTION)
    assert answer.choices[0].message.content == DEFAULT_TEXT
    assert answer.choices[0].finish_reason == "stop"
    assert answer.model == "model-primary"
    assert answer.usage is not None and answer.usage.completion_tokens > 0
    assert fleet.outcomes("primary") == ["ok"]
    # What the upstream said beyond the text reaches the client as it was said.
    assert answer.system_fingerprint == "fp_bastion_fleet"
    assert answer.usage.prompt_tokens_details is not None
    assert answer.usage.prompt_tokens_details.cached_tokens == 0


def test_sync_client_streams_an_answer(client: openai.OpenAI) -> None:
    stream = client.chat.completions.create(
        model="chat", messages=QUESTION, stream=True, stream_options={"include_usage": True}
    )
    chunks = list(stream)
    assert streamed_text(chunks) == DEFAULT_TEXT
    usage = chunks[-1].usage
    assert usage is not None and usage.completion_tokens > 0
    # The token details the upstream reported survive the re-encoding of the stream.
    assert usage.prompt_tokens_details is not None
    assert usage.prompt_tokens_details.cached_tokens == 0


async def test_async_client_gets_an_answer(aclient: openai.AsyncOpenAI) -> None:
    answer = await aclient.chat.completions.create(model="chat", messages=QUESTION)
    assert answer.choices[0].message.content == DEFAULT_TEXT


async def test_async_client_streams_an_answer(aclient: openai.AsyncOpenAI) -> None:
    stream = await aclient.chat.completions.create(model="chat", messages=QUESTION, stream=True)
    assert streamed_text([chunk async for chunk in stream]) == DEFAULT_TEXT


def test_models_lists_what_the_key_may_use(client: openai.OpenAI) -> None:
    assert [m.id for m in client.models.list()] == ["chat"]


# --- failover is invisible -----------------------------------------------------------------


@pytest.mark.parametrize("fault", FAULTS, ids=str)
@pytest.mark.parametrize("stream", [False, True], ids=["complete", "stream"])
def test_sync_client_never_sees_the_primary_fail(
    client: openai.OpenAI, fleet: FleetProcess, fault: str, stream: bool
) -> None:
    fleet.set_default("primary", FAULTS[fault])
    raw = client.chat.completions.with_raw_response.create(
        model="chat", messages=QUESTION, stream=stream
    )
    parsed = raw.parse()
    text = streamed_text(parsed) if stream else parsed.choices[0].message.content
    assert text == DEFAULT_TEXT
    assert raw.headers["x-bastion-endpoint"] == "secondary"
    assert int(raw.headers["x-bastion-attempts"]) >= 2
    assert fleet.outcomes("primary") and set(fleet.outcomes("primary")) == {fault_kind(fault)}
    assert fleet.outcomes("secondary") == ["ok"]


@pytest.mark.parametrize("fault", FAULTS, ids=str)
@pytest.mark.parametrize("stream", [False, True], ids=["complete", "stream"])
async def test_async_client_never_sees_the_primary_fail(
    aclient: openai.AsyncOpenAI, fleet: FleetProcess, fault: str, stream: bool
) -> None:
    fleet.set_default("primary", FAULTS[fault])
    raw = await aclient.chat.completions.with_raw_response.create(
        model="chat", messages=QUESTION, stream=stream
    )
    parsed = raw.parse()
    if stream:
        text = streamed_text([chunk async for chunk in parsed])
    else:
        text = parsed.choices[0].message.content
    assert text == DEFAULT_TEXT
    assert raw.headers["x-bastion-endpoint"] == "secondary"
    assert fleet.outcomes("secondary") == ["ok"]


def test_sync_stream_cut_mid_answer_still_gives_the_whole_text(
    client: openai.OpenAI, fleet: FleetProcess
) -> None:
    fleet.script("primary", {"kind": "cut", "after_chars": 12})
    stream = client.chat.completions.create(model="chat", messages=QUESTION, stream=True)
    assert streamed_text(stream) == DEFAULT_TEXT
    assert fleet.outcomes("primary") == ["cut"]
    assert fleet.outcomes("secondary") == ["ok"]


async def test_async_stream_cut_mid_answer_still_gives_the_whole_text(
    aclient: openai.AsyncOpenAI, fleet: FleetProcess
) -> None:
    fleet.script("primary", {"kind": "cut", "after_chars": 20})
    stream = await aclient.chat.completions.create(model="chat", messages=QUESTION, stream=True)
    assert streamed_text([chunk async for chunk in stream]) == DEFAULT_TEXT
    assert fleet.outcomes("primary") == ["cut"]


def test_after_a_mid_stream_switch_chunks_name_the_model_producing_them(
    client: openai.OpenAI, fleet: FleetProcess
) -> None:
    fleet.script("primary", {"kind": "cut", "after_chars": 20})
    chunks = list(
        client.chat.completions.create(
            model="chat",
            messages=QUESTION,
            stream=True,
            stream_options={"include_usage": True},
        )
    )
    assert streamed_text(chunks) == DEFAULT_TEXT
    texts = [c for c in chunks if c.choices and c.choices[0].delta.content]
    before = "".join(c.choices[0].delta.content or "" for c in texts if c.model == "model-primary")
    assert before and DEFAULT_TEXT.startswith(before)
    assert texts[-1].model == "model-secondary"
    # The usage chunk: the serving attempt's own count, and what the request consumed.
    final = chunks[-1]
    assert final.usage is not None and final.usage.completion_tokens > 0
    extension = (final.model_extra or {})["bastion"]
    assert (extension["attempts"], extension["seams"]) == (2, 1)
    assert extension["usage_total"]["total_tokens"] == final.usage.total_tokens
    assert extension["estimated_unreported_completion_tokens"] == -(-len(before) // 4)


# --- errors are the SDK's typed exceptions ---------------------------------------------------


def test_unknown_model_is_not_found(gateway: GatewayProcess, keys: Keys) -> None:
    # The admin key may use every model, so the answer is about the model, not the key.
    sdk = openai.OpenAI(base_url=f"{gateway.url}/v1", api_key=keys.admin, max_retries=0)
    with sdk, pytest.raises(openai.NotFoundError) as caught:
        sdk.chat.completions.create(model="no-such-model", messages=QUESTION)
    assert caught.value.code == "model_not_found"
    assert caught.value.param == "model"


def test_bad_input_is_a_bad_request_naming_the_field(client: openai.OpenAI) -> None:
    with pytest.raises(openai.BadRequestError) as caught:
        client.chat.completions.create(model="chat", messages=QUESTION, temperature=5)
    assert caught.value.param == "temperature"
    assert "temperature" in caught.value.message


async def test_bad_message_is_a_bad_request_naming_the_field(
    aclient: openai.AsyncOpenAI,
) -> None:
    with pytest.raises(openai.BadRequestError) as caught:
        await aclient.chat.completions.create(
            model="chat",
            messages=[{"role": "wizard", "content": "hi"}],  # type: ignore[list-item]
            stream=True,
        )
    assert caught.value.param == "messages[0].role"
    assert "messages[0].role" in caught.value.message


def test_bad_key_is_an_authentication_error(gateway: GatewayProcess) -> None:
    with (
        openai.OpenAI(base_url=f"{gateway.url}/v1", api_key="not-a-key", max_retries=0) as sdk,
        pytest.raises(openai.AuthenticationError),
    ):
        sdk.chat.completions.create(model="chat", messages=QUESTION)


async def test_key_without_the_scope_is_a_permission_error(
    gateway: GatewayProcess, keys: Keys, fleet: FleetProcess
) -> None:
    async with openai.AsyncOpenAI(
        base_url=f"{gateway.url}/v1", api_key=keys.other, max_retries=0
    ) as sdk:
        with pytest.raises(openai.PermissionDeniedError) as caught:
            await sdk.chat.completions.create(model="chat", messages=QUESTION)
    assert caught.value.param == "model"
    assert fleet.attempts("primary") == [] and fleet.attempts("secondary") == []


def test_every_endpoint_failing_is_a_server_error_listing_the_attempts(
    client: openai.OpenAI, fleet: FleetProcess
) -> None:
    for name in ("primary", "secondary"):
        fleet.set_default(name, {"kind": "status", "code": 500})
    with pytest.raises(openai.InternalServerError) as caught:
        client.chat.completions.create(model="chat", messages=QUESTION)
    assert caught.value.status_code == 502
    body = caught.value.body
    assert isinstance(body, dict)
    assert {a["endpoint"] for a in body["attempts"]} == {"primary", "secondary"}
