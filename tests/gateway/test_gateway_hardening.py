"""`bastion serve` in front of the simulated fleet: what a client sees when an upstream
refuses its request, when nothing is in service, and what passes through a stream."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import openai
import pytest
from gateway_support import QUESTION, FleetProcess, GatewayProcess, Keys, bearer, gateway_config

from bastion.testing import DEFAULT_TEXT


@pytest.fixture
def client(gateway: GatewayProcess, keys: Keys) -> Iterator[openai.OpenAI]:
    with openai.OpenAI(
        base_url=f"{gateway.url}/v1", api_key=keys.app, max_retries=0, timeout=10
    ) as sdk:
        yield sdk


def test_an_upstream_400_reaches_the_client_in_its_own_words_without_secrets(
    client: openai.OpenAI, fleet: FleetProcess, keys: Keys
) -> None:
    message = (
        "Invalid value for 'temperature': 7 is above the maximum of 2. "
        f"(sk-live-0123456789abcdef; configured key {keys.upstream})"
    )
    error = {
        "message": message,
        "type": "invalid_request_error",
        "param": "temperature",
        "code": "invalid_value",
    }
    fleet.set_default("primary", {"kind": "status", "code": 400, "body": {"error": error}})
    with pytest.raises(openai.BadRequestError) as caught:
        client.chat.completions.create(model="chat", messages=QUESTION)
    assert caught.value.status_code == 400
    body = caught.value.body
    assert isinstance(body, dict)
    assert body["message"].startswith("Invalid value for 'temperature': 7 is above")
    assert (body["param"], body["code"], body["type"]) == (
        "temperature",
        "invalid_value",
        "invalid_request_error",
    )
    assert [a["endpoint"] for a in body["attempts"]] == ["primary"]
    raw = caught.value.response.text
    assert "sk-live-0123456789abcdef" not in raw and keys.upstream not in raw


def test_every_target_isolated_serves_the_degraded_answer(
    make_gateway, fleet: FleetProcess, keys: Keys
) -> None:
    config = gateway_config(
        fleet,
        models={"chat": {"targets": ["primary", "secondary"], "degraded": {"message": "Busy."}}},
    )
    server = make_gateway(config)
    with httpx.Client(base_url=server.url, timeout=10) as http:
        for name in ("primary", "secondary"):
            isolated = http.post(f"/api/v1/endpoints/{name}/isolate", headers=bearer(keys.admin))
            assert isolated.status_code == 200
        body = {"model": "chat", "messages": QUESTION}
        answer = http.post("/v1/chat/completions", json=body, headers=bearer(keys.app))
        assert answer.status_code == 200
        assert answer.headers["x-bastion-degraded"] == "true"
        assert answer.json()["choices"][0]["message"]["content"] == "Busy."
        streamed = http.post(
            "/v1/chat/completions", json={**body, "stream": True}, headers=bearer(keys.app)
        )
        assert streamed.status_code == 200 and '"content":"Busy."' in streamed.text
    assert fleet.attempts("primary") == [] and fleet.attempts("secondary") == []


def test_a_stream_passes_on_logprobs_and_the_system_fingerprint(client: openai.OpenAI) -> None:
    stream = client.chat.completions.create(
        model="chat", messages=QUESTION, stream=True, logprobs=True, top_logprobs=1
    )
    chunks = list(stream)
    assert chunks and all(c.system_fingerprint == "fp_bastion_fleet" for c in chunks)
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    tokens = [
        entry.token
        for c in chunks
        if c.choices and c.choices[0].logprobs is not None
        for entry in c.choices[0].logprobs.content or ()
    ]
    assert text == DEFAULT_TEXT and "".join(tokens) == DEFAULT_TEXT


def test_a_whole_answer_passes_on_logprobs(client: openai.OpenAI) -> None:
    answer = client.chat.completions.create(model="chat", messages=QUESTION, logprobs=True)
    choice = answer.choices[0]
    assert choice.message.content == DEFAULT_TEXT
    assert choice.logprobs is not None and choice.logprobs.content is not None
    assert "".join(entry.token for entry in choice.logprobs.content) == DEFAULT_TEXT
    assert answer.system_fingerprint == "fp_bastion_fleet"
    assert answer.id.startswith("chatcmpl-fake")


def test_a_whole_answer_leaves_a_silent_upstream_after_the_first_token_limit(
    make_gateway, fleet: FleetProcess, keys: Keys
) -> None:
    config = gateway_config(fleet)
    for endpoint in config["endpoints"]:
        endpoint["upstream_stream"] = "always"
        endpoint["timeouts"] = {"first_token": "300ms", "total": "120s"}
    server = make_gateway(config)
    fleet.set_default("primary", {"kind": "hang"})
    with openai.OpenAI(
        base_url=f"{server.url}/v1", api_key=keys.app, max_retries=0, timeout=20
    ) as sdk:
        reply = sdk.chat.completions.with_raw_response.create(model="chat", messages=QUESTION)
    answer = reply.parse()
    assert answer.choices[0].message.content == DEFAULT_TEXT
    assert reply.headers["x-bastion-endpoint"] == "secondary"
    assert reply.headers["x-bastion-attempts"] == "2"
    assert answer.system_fingerprint == "fp_bastion_fleet"
    assert answer.model == "model-secondary" and answer.id.startswith("chatcmpl-fake")
    assert [a["stream"] for a in fleet.attempts("secondary")] == [True]
