"""Secrets come from the environment: a config file or text that holds one as a literal
is refused, naming the field and never the value, unless the operator opts out."""

from __future__ import annotations

import pytest
from config_support import BASE
from structlog.testing import capture_logs

from bastion.config import ConfigError, load_config

ENDPOINT = """\
endpoints:
  - id: a
    provider: openai
    model: m
    base_url: http://127.0.0.1:9/v1
"""


@pytest.mark.parametrize(
    ("extra", "field", "line"),
    [
        ("    api_key: sk-live-0123456789\n", "endpoints[0].api_key", 6),
        (
            "    headers: {Authorization: Bearer sk-live-0123456789}\n",
            "endpoints[0].headers.Authorization",
            6,
        ),
        ("    proxy: http://user:sk-live-0123456789@proxy.test:3128\n", "endpoints[0].proxy", 6),
        (
            "auth:\n  keys:\n    - {key: sk-live-0123456789, name: app}\n",
            "auth.keys[0].key",
            8,
        ),
        (
            "memory: {store: 'postgresql://bastion:sk-live-0123456789@127.0.0.1/bastion'}\n",
            "memory.store",
            6,
        ),
    ],
)
def test_a_literal_secret_in_a_file_is_refused_naming_the_field(
    tmp_path, extra, field, line
) -> None:
    path = tmp_path / "bastion.yaml"
    path.write_text(ENDPOINT + extra)
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    assert caught.value.field == field
    assert caught.value.line == line
    assert "a secret must come from the environment: write ${VAR}" in str(caught.value)
    assert "sk-live" not in str(caught.value)


def test_secrets_from_the_environment_are_accepted(monkeypatch) -> None:
    monkeypatch.setenv("T_UPSTREAM_KEY", "sk-from-env")
    config = load_config(
        ENDPOINT
        + "    api_key: ${T_UPSTREAM_KEY}\n"
        + '    headers: {Authorization: "Bearer ${T_TOKEN:-fallback-token}", X-Org: acme}\n'
        + "auth:\n  keys:\n    - {key: '${T_APP_KEY:-app-key-0123456789}', name: app}\n"
    )
    assert config.endpoints[0].api_key == "sk-from-env"
    assert dict(config.endpoints[0].headers) == {
        "Authorization": "Bearer fallback-token",
        "X-Org": "acme",
    }


def test_the_opt_out_allows_literal_secrets_with_a_loud_warning() -> None:
    text = (
        ENDPOINT + "    api_key: sk-live-0123456789\n" + "server: {allow_literal_secrets: true}\n"
    )
    with capture_logs() as logs:
        config = load_config(text)
    assert config.endpoints[0].api_key == "sk-live-0123456789"
    [warning] = [e for e in logs if e["log_level"] == "warning"]
    assert "secrets as literals" in warning["event"]
    assert "sk-live" not in str(warning)


def test_a_config_from_python_code_may_hold_its_secrets() -> None:
    config = load_config(
        {
            "endpoints": [
                {"id": "a", "provider": "openai", "model": "m", "base_url": "http://x/v1"}
                | {"api_key": "sk-from-code"}
            ],
            "auth": {"keys": [{"key": "key-from-code", "name": "app"}]},
        }
    )
    assert config.endpoints[0].api_key == "sk-from-code"


def test_a_file_without_secrets_needs_no_opt_out() -> None:
    load_config(BASE)
