"""One provider registry: what the config accepts is what the factory builds."""

from __future__ import annotations

import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from bastion import ConfigError, Endpoint
from bastion.config import load_config
from bastion.models import PROVIDERS, ChatModel, build_model


@pytest.mark.parametrize("name", sorted(PROVIDERS))
async def test_every_registered_provider_loads_from_a_config_and_builds_a_model(name):
    config = load_config(
        {"endpoints": [{"id": "e", "provider": name, "model": "m", "base_url": "http://h/v1"}]}
        if not PROVIDERS[name].scripted
        else {"endpoints": [{"id": "e", "provider": name, "model": "m"}]}
    )
    model = build_model(config.endpoints[0])
    assert isinstance(model, ChatModel) and model.model_name == "m"
    close = getattr(model, "aclose", None)
    if close is not None:
        await close()


def test_an_unknown_provider_is_refused_with_the_registered_names_in_config_and_factory():
    # In code an endpoint may name any provider when its model is handed in with it;
    # only building a model for it needs the registry.
    with pytest.raises(ConfigError) as from_config:
        load_config({"endpoints": [{"id": "e", "provider": "gemini", "model": "m"}]})
    with pytest.raises(ValueError) as from_code:
        build_model(Endpoint(id="e", provider="gemini", model="m"))
    for message in (str(from_config.value), str(from_code.value)):
        assert "unknown provider 'gemini'" in message
        assert all(name in message for name in PROVIDERS)
    assert "endpoints[0].provider" in str(from_config.value)


def test_reply_is_refused_for_a_provider_that_calls_an_upstream():
    with pytest.raises(ValueError, match="reply is only for provider 'scripted'"):
        Endpoint(id="e", provider="anthropic", model="m", reply="hi")


@given(secret=st.text(alphabet=st.characters(min_codepoint=33, max_codepoint=126), min_size=8))
def test_an_invalid_endpoint_never_shows_its_api_key(secret):
    # Every field of an endpoint can be wrong at once; the error still never echoes the key.
    # A key that is a word of the message itself ("scripted") proves nothing either way.
    with pytest.raises(ValueError) as without_key:
        Endpoint(id="e", provider="openai", model="m", reply="x")
    assume(secret not in str(without_key.value))
    with pytest.raises(ValueError) as caught:
        Endpoint(id="e", provider="openai", model="m", api_key=secret, reply="x")
    assert secret not in str(caught.value)
