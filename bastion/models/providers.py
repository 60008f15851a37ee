"""The providers Bastion can talk to: one registry, read by the factory and the config.

An endpoint's `provider` names an entry here; `Endpoint` refuses any other name, so
the YAML config, the Python API and `build_model` agree on the list by construction.
Each factory imports its provider's module when first used: a process that only
talks to OpenAI-compatible endpoints never imports the Anthropic adapter.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from bastion.models.base import ChatModel, Endpoint
    from bastion.models.http import Transport


@dataclass(frozen=True, slots=True)
class Provider:
    """How to build a provider's model, and what its endpoints must say.

    `build(endpoint, session)`: an injected `session` is shared, not owned.
    `needs_base_url`: a config must give the URL (there is no one right default, as
    for "any OpenAI-compatible server"). `scripted`: answers from the endpoint's
    `reply`, no upstream at all."""

    build: Callable[[Endpoint, Transport | None], ChatModel]
    needs_base_url: bool = False
    scripted: bool = False


def _openai(endpoint: Endpoint, session: Transport | None) -> ChatModel:
    from bastion.models.openai import OpenAIChatModel

    return OpenAIChatModel(endpoint, session=session)


def _anthropic(endpoint: Endpoint, session: Transport | None) -> ChatModel:
    from bastion.models.anthropic import AnthropicChatModel

    return AnthropicChatModel(endpoint, session=session)


def _scripted(endpoint: Endpoint, session: Transport | None) -> ChatModel:
    from bastion.models.scripted import ScriptedModel

    return ScriptedModel(model=endpoint.model, default=endpoint.reply or "")


PROVIDERS: Mapping[str, Provider] = MappingProxyType(
    {
        "openai": Provider(_openai, needs_base_url=True),
        "anthropic": Provider(_anthropic),
        "scripted": Provider(_scripted, scripted=True),
    }
)


def provider(name: str) -> Provider:
    """The registry's entry for `name`; ValueError listing the known names otherwise."""
    found = PROVIDERS.get(name)
    if found is None:
        raise ValueError(f"unknown provider {name!r} (expected one of {', '.join(PROVIDERS)})")
    return found
