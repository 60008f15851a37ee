"""Providers behind one `ChatModel` protocol, and a factory from an `Endpoint`."""

from __future__ import annotations

from typing import TYPE_CHECKING

from bastion.models.base import ChatModel, Endpoint, HealthCheck, Timeouts
from bastion.models.providers import PROVIDERS, Provider, provider
from bastion.models.scripted import Fail, Reply, ScriptedModel

if TYPE_CHECKING:
    from bastion.models.http import Transport


def build_model(endpoint: Endpoint, *, session: Transport | None = None) -> ChatModel:
    """The provider's model for `endpoint`. An injected `session` is shared, not owned."""
    return provider(endpoint.provider).build(endpoint, session)


__all__ = [
    "PROVIDERS",
    "ChatModel",
    "Endpoint",
    "Fail",
    "HealthCheck",
    "Provider",
    "Reply",
    "ScriptedModel",
    "Timeouts",
    "build_model",
]
