"""The scope rule of a key, for every key: least privilege once a scope is named."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from bastion.config.schema import AuthSettings
from bastion.server.auth import KeyRing

NAMES = st.sampled_from(["chat", "primary", "support", "billing"])
SCOPE = st.none() | st.lists(NAMES, max_size=3)


@given(models=SCOPE, agents=SCOPE, asked=NAMES)
def test_a_scope_left_out_grants_nothing_unless_none_is_named(
    models: list[str] | None, agents: list[str] | None, asked: str
) -> None:
    key = "k-0123456789"
    entry: dict[str, object] = {"key": key, "name": "k"}
    if models is not None:
        entry["models"] = models
    if agents is not None:
        entry["agents"] = agents
    principal = KeyRing.from_settings(AuthSettings.model_validate({"keys": [entry]})).authenticate(
        key
    )
    assert principal is not None
    unscoped = models is None and agents is None
    assert principal.may_use_model(asked) == (unscoped or asked in (models or ()))
    assert principal.may_use_agent(asked) == (unscoped or asked in (agents or ()))
