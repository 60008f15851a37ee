"""`GET /v1/models/{id}` through the official `openai` client: a model the key may use
in OpenAI's model object shape; an unknown id, or one outside the key's scope, a 404
the SDK raises as `NotFoundError`."""

from __future__ import annotations

from collections.abc import Iterator

import openai
import pytest
from gateway_support import FleetProcess, GatewayProcess, Keys, MakeGateway, gateway_config


def sdk(gateway: GatewayProcess, key: str) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{gateway.url}/v1", api_key=key, max_retries=0, timeout=10)


@pytest.fixture
def client(gateway: GatewayProcess, keys: Keys) -> Iterator[openai.OpenAI]:
    with sdk(gateway, keys.app) as app:  # models: [chat]
        yield app


def test_a_model_the_key_may_use_is_retrieved(client: openai.OpenAI) -> None:
    model = client.models.retrieve("chat")
    assert (model.id, model.object, model.owned_by) == ("chat", "model", "bastion")
    assert model.created > 0
    assert model in list(client.models.list())


def test_an_endpoint_id_is_a_model_too(gateway: GatewayProcess, keys: Keys) -> None:
    with sdk(gateway, keys.admin) as admin:
        assert admin.models.retrieve("secondary").id == "secondary"


@pytest.mark.parametrize("name", ["gpt-17", "primary"], ids=["unknown", "outside-scope"])
def test_an_unknown_or_refused_model_is_not_found(client: openai.OpenAI, name: str) -> None:
    with pytest.raises(openai.NotFoundError) as caught:
        client.models.retrieve(name)
    error = caught.value.body
    assert isinstance(error, dict)
    assert (error["code"], error["param"], error["type"]) == (
        "model_not_found",
        "model",
        "invalid_request_error",
    )
    assert name in error["message"]


def test_a_group_named_with_a_slash_is_retrieved(
    make_gateway: MakeGateway, fleet: FleetProcess, keys: Keys
) -> None:
    groups = {"chat": {"targets": ["primary"]}, "openai/gpt-4o": {"targets": ["secondary"]}}
    server = make_gateway(gateway_config(fleet, models=groups))
    with sdk(server, keys.admin) as admin:
        assert admin.models.retrieve("openai/gpt-4o").id == "openai/gpt-4o"
        with pytest.raises(openai.NotFoundError):
            admin.models.retrieve("openai/gpt-5")
