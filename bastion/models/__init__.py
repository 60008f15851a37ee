"""Providers behind one `ChatModel` protocol, and a factory from an `Endpoint`."""

from __future__ import annotations

from typing import TYPE_CHECKING

from bastion.models.base import ChatModel, Endpoint, HealthCheck, Timeouts
from bastion.models.scripted import Fail, Reply, ScriptedModel

if TYPE_CHECKING:
    from bastion.models.http import Transport

PROVIDERS = ("openai", "anthropic", "scripted")


def build_model(endpoint: Endpoint, *, session: Transport | None = None) -> ChatModel:
    """The provider's model for `endpoint`. An injected `session` is shared, not owned."""
    if endpoint.provider == "openai":
        from bastion.models.openai import OpenAIChatModel

        return OpenAIChatModel(endpoint, session=session)
    if endpoint.provider == "anthropic":
        from bastion.models.anthropic import AnthropicChatModel

        return AnthropicChatModel(endpoint, session=session)
    if endpoint.provider == "scripted":
        return ScriptedModel(model=endpoint.model, default="")
    raise ValueError(
        f"endpoint {endpoint.id!r}: unknown provider {endpoint.provider!r} "
        f"(expected one of {', '.join(PROVIDERS)})"
    )


__all__ = [
    "PROVIDERS",
    "ChatModel",
    "Endpoint",
    "Fail",
    "HealthCheck",
    "Reply",
    "ScriptedModel",
    "Timeouts",
    "build_model",
]
