"""`auth.keys[].resources`, `require_user` and `auth.user_tokens` in the config: a
binding or a token setting that cannot work is a config error naming its field, and
never quoting the secret."""

from __future__ import annotations

from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from identity_support import SECRET, user_tokens

from bastion.config import ConfigError, load_config

ENDPOINT = {
    "id": "a",
    "provider": "openai",
    "model": "m",
    "base_url": "http://127.0.0.1:9/v1",
    "health": False,
}
APP = {"key": "app-key-0123456789", "name": "app"}

_PRIVATE = rsa.generate_private_key(public_exponent=65537, key_size=2048)
PUBLIC_PEM = (
    _PRIVATE.public_key()
    .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    .decode()
)
PRIVATE_PEM = _PRIVATE.private_bytes(
    serialization.Encoding.PEM,
    serialization.PrivateFormat.PKCS8,
    serialization.NoEncryption(),
).decode()


def config(auth: dict[str, Any]) -> dict[str, Any]:
    return {"endpoints": [ENDPOINT], "health_checks": False, "auth": auth}


def rs256(**overrides: Any) -> dict[str, Any]:
    return user_tokens(
        **{"secret": None, "public_key": PUBLIC_PEM, "algorithms": ["RS256"], **overrides}
    )


@pytest.mark.parametrize(
    ("auth", "field", "words"),
    [
        ({"keys": [{**APP, "resources": {}}]}, "auth.keys[0].resources", "either id"),
        (
            {"keys": [{**APP, "resources": {"id": "a", "prefix": "b/"}}]},
            "auth.keys[0].resources",
            "either id",
        ),
        ({"keys": [{**APP, "resources": {"id": "bad\nid"}}]}, "auth.keys[0].resources.id", ""),
        (
            {"keys": [{**APP, "admin": True, "resources": {"id": "a"}}]},
            "auth.keys[0].resources",
            "admin",
        ),
        ({"keys": [{**APP, "require_user": True}]}, "auth.keys[0].require_user", "user_tokens"),
        (
            {
                "keys": [{**APP, "require_user": True, "resources": {"id": "a"}}],
                "user_tokens": user_tokens(),
            },
            "auth.keys[0].require_user",
            "prefix",
        ),
        ({"user_tokens": user_tokens()}, "auth.user_tokens", "auth.keys"),
        ({"keys": [APP], "user_tokens": user_tokens(secret="short")}, "auth.user_tokens", "32"),
        (
            {"keys": [APP], "user_tokens": user_tokens(algorithms=["HS256", "RS256"])},
            "auth.user_tokens.algorithms",
            "mix",
        ),
        (
            {"keys": [APP], "user_tokens": user_tokens(algorithms=["none"])},
            "auth.user_tokens.algorithms[0]",
            "",
        ),
        (
            {"keys": [APP], "user_tokens": user_tokens(algorithms=[])},
            "auth.user_tokens.algorithms",
            "",
        ),
        ({"keys": [APP], "user_tokens": user_tokens(secret=None)}, "auth.user_tokens", "secret"),
        (
            {"keys": [APP], "user_tokens": rs256(public_key=None)},
            "auth.user_tokens",
            "public_key",
        ),
        (
            {"keys": [APP], "user_tokens": rs256(public_key="-----BEGIN nonsense")},
            "auth.user_tokens",
            "PEM",
        ),
        (
            {"keys": [APP], "user_tokens": rs256(public_key=PRIVATE_PEM)},
            "auth.user_tokens",
            "private key",
        ),
        (
            {"keys": [APP], "user_tokens": rs256(algorithms=["ES256"])},
            "auth.user_tokens",
            "PEM",
        ),
        (
            {"keys": [APP], "user_tokens": user_tokens(public_key=PUBLIC_PEM)},
            "auth.user_tokens",
            "not a public_key",
        ),
    ],
)
def test_a_binding_or_token_setting_that_cannot_work_names_its_field(auth, field, words) -> None:
    with pytest.raises(ConfigError) as caught:
        load_config(config(auth))

    assert caught.value.field == field, str(caught.value)
    assert words in str(caught.value)
    assert SECRET not in str(caught.value)
    assert "BEGIN" not in str(caught.value)


def test_bindings_and_token_settings_that_work_load() -> None:
    loaded = load_config(
        config(
            {
                "keys": [
                    {**APP, "resources": {"prefix": "tenant-a/"}, "require_user": True},
                    {"key": "solo-key-0123456789", "name": "solo", "resources": {"id": "s"}},
                ],
                "user_tokens": rs256(leeway="30s"),
            }
        )
    )

    assert loaded.auth is not None
    assert loaded.auth.keys[0].resources is not None
    assert loaded.auth.keys[0].resources.prefix == "tenant-a/"
    assert loaded.auth.user_tokens is not None
    assert loaded.auth.user_tokens.leeway == 30.0


def test_a_literal_token_secret_in_a_file_is_refused(tmp_path) -> None:
    path = tmp_path / "bastion.yaml"
    path.write_text(
        "endpoints: [{id: a, provider: openai, model: m, base_url: 'http://127.0.0.1:9/v1'}]\n"
        "auth:\n"
        "  keys: [{key: '${T_APP_KEY:-app-key-0123456789}', name: app}]\n"
        f"  user_tokens: {{secret: {SECRET}}}\n"
    )

    with pytest.raises(ConfigError) as caught:
        load_config(path)

    assert caught.value.field == "auth.user_tokens.secret"
    assert SECRET not in str(caught.value)


def test_a_token_secret_from_the_environment_loads(tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("T_USER_SECRET", SECRET)
    path = tmp_path / "bastion.yaml"
    path.write_text(
        "endpoints: [{id: a, provider: openai, model: m, base_url: 'http://127.0.0.1:9/v1'}]\n"
        "auth:\n"
        "  keys: [{key: '${T_APP_KEY:-app-key-0123456789}', name: app}]\n"
        "  user_tokens: {secret: '${T_USER_SECRET}', algorithms: [HS256]}\n"
    )

    loaded = load_config(path)

    assert loaded.auth is not None and loaded.auth.user_tokens is not None
    assert loaded.auth.user_tokens.secret is not None
    assert loaded.auth.user_tokens.secret.get_secret_value() == SECRET
    assert SECRET not in repr(loaded)
