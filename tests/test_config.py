"""Config files: the schema of DESIGN §3, secrets from the environment, errors that say where."""

from __future__ import annotations

import pytest

from bastion import ConfigError, Endpoint, ErrorKind, Router, RouterOptions, chat
from bastion.config import load_config
from bastion.resilience import BreakerConfig

CONFIG = """\
endpoints:
  - id: primary
    provider: openai
    base_url: http://127.0.0.1:9/v1
    api_key: ${PRIMARY_KEY}
    model: gpt-4o-mini
    context_window: 128000
    timeouts: {connect: 250ms, first_token: 2s, idle: 5s, total: 1m}
    health: {interval: 5s}
    retry: {server_error: {retries: 1}}
  - id: local
    provider: scripted
    model: tiny
    reply: "from the local model"
    health: false
models:
  chat:
    strategy: priority
    targets: [primary, {model: local, retries: 0}]
    degraded: {message: "Service is degraded, please retry shortly."}
    classify:
      - {status: 400, body: quota, kind: rate_limited}
default_model: chat
retry:   {rate_limited: {attempts: 3, base: 1s, max: 16s}}
breaker: {consecutive_failures: 5, failure_rate: 0.5, window: 30s, min_calls: 20, open_for: 10s}
deadline: 30s
"""


def test_design_example_loads_with_durations_and_env_secrets(monkeypatch):
    monkeypatch.setenv("PRIMARY_KEY", "sk-secret-value")
    config = load_config(CONFIG)
    primary = config.endpoints[0]
    assert primary.api_key == "sk-secret-value"
    assert primary.timeouts.connect == 0.25 and primary.timeouts.total == 60.0
    assert config.retry[ErrorKind.RATE_LIMITED].overrides() == {
        "retries": 3,
        "base": 1.0,
        "max": 16.0,
    }
    assert "sk-secret-value" not in repr(config)


def test_missing_env_secret_names_the_variable_field_and_line(monkeypatch):
    monkeypatch.delenv("PRIMARY_KEY", raising=False)
    with pytest.raises(ConfigError) as caught:
        load_config(CONFIG)
    message = str(caught.value)
    assert "PRIMARY_KEY" in message and "endpoints[0].api_key" in message
    assert caught.value.line == 5


def test_bad_duration_names_file_line_and_field(tmp_path, monkeypatch):
    monkeypatch.setenv("PRIMARY_KEY", "k")
    path = tmp_path / "bastion.yaml"
    path.write_text(CONFIG.replace("connect: 250ms", "connect: fast"))
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    message = str(caught.value)
    assert str(path) in message and "line 8" in message
    assert "endpoints[0].timeouts.connect" in message and "not a duration" in message


def test_unknown_key_is_an_error_not_ignored(monkeypatch):
    monkeypatch.setenv("PRIMARY_KEY", "k")
    with pytest.raises(ConfigError, match=r"breaker\.open_fro"):
        load_config(CONFIG.replace("open_for: 10s", "open_fro: 10s"))


def test_target_naming_nothing_is_an_error(monkeypatch):
    monkeypatch.setenv("PRIMARY_KEY", "k")
    with pytest.raises(ConfigError, match="unknown endpoint or model 'secondary'"):
        load_config(CONFIG.replace("targets: [primary,", "targets: [secondary,"))


def test_invalid_yaml_reports_the_line():
    with pytest.raises(ConfigError) as caught:
        load_config("endpoints:\n  - id: [unclosed\n")
    assert caught.value.line is not None and "not valid YAML" in str(caught.value)


def test_secret_value_never_appears_in_a_validation_error(monkeypatch):
    monkeypatch.setenv("PRIMARY_KEY", "sk-do-not-print")
    broken = CONFIG.replace("model: gpt-4o-mini", "model: ''")
    with pytest.raises(ConfigError) as caught:
        load_config(broken)
    assert "sk-do-not-print" not in str(caught.value)


async def test_router_from_config_serves_from_the_scripted_endpoint(monkeypatch):
    monkeypatch.setenv("PRIMARY_KEY", "k")
    async with Router.from_config(CONFIG) as router:
        router.isolate("primary")
        answer = await router.complete(chat("hi"))
    assert (answer.endpoint, answer.text) == ("local", "from the local model")


def test_router_from_a_mapping():
    router = Router.from_config(
        {
            "endpoints": [{"id": "a", "provider": "scripted", "model": "m", "reply": "x"}],
            "models": {"chat": {"targets": ["a"], "hedge": True}},
        }
    )
    assert router.endpoints == ("a",) and router.groups["chat"].hedge is not None


def test_degraded_handler_import_path_is_checked():
    with pytest.raises(ConfigError, match="cannot import"):
        Router.from_config(
            {
                "endpoints": [{"id": "a", "provider": "scripted", "model": "m"}],
                "models": {"chat": {"targets": ["a"], "degraded": {"handler": "nowhere:fn"}}},
            }
        )


@pytest.mark.parametrize(
    ("url", "says"),
    [
        ("https://user:hunter2@proxy.example/v1", "credentials in the URL are not supported"),
        ("ftp://proxy.example/v1", "unsupported URL scheme 'ftp'"),
    ],
)
def test_a_base_url_the_client_cannot_use_is_refused_at_load(monkeypatch, url, says):
    monkeypatch.setenv("PRIMARY_KEY", "k")
    with pytest.raises(ConfigError) as caught:
        load_config(CONFIG.replace("http://127.0.0.1:9/v1", url))
    message = str(caught.value)
    assert "line 4" in message and "endpoints[0].base_url" in message and says in message
    assert "hunter2" not in message


@pytest.mark.parametrize(
    ("section", "says"),
    [("state", "shared state across processes"), ("mcp", "MCP servers")],
)
def test_a_section_that_is_not_built_is_refused_by_name(monkeypatch, section, says):
    monkeypatch.setenv("PRIMARY_KEY", "k")
    with pytest.raises(ConfigError) as caught:
        load_config(CONFIG + f"{section}: {{anything: 1}}\n")
    message = str(caught.value)
    assert f"{section}: not implemented yet" in message and says in message
    assert caught.value.line == CONFIG.count("\n") + 1


def test_a_degraded_handler_that_cannot_be_imported_names_field_and_line():
    with pytest.raises(ConfigError) as caught:
        load_config(
            "endpoints: [{id: a, provider: scripted, model: m}]\n"
            "models:\n"
            "  chat:\n"
            "    targets: [a]\n"
            "    degraded: {handler: 'nowhere:fn'}\n"
        )
    assert "models.chat.degraded: cannot import 'nowhere:fn'" in str(caught.value)
    assert caught.value.line == 5


def test_a_bad_fallback_entry_names_its_own_field_not_the_union_member(monkeypatch):
    monkeypatch.setenv("PRIMARY_KEY", "k")
    with pytest.raises(ConfigError) as caught:
        load_config(CONFIG.replace("{model: local, retries: 0}", "{model: local, retries: -1}"))
    message = str(caught.value)
    assert "models.chat.targets[1].retries" in message and "greater than or equal to 0" in message
    assert caught.value.line == 19


async def test_the_loaded_endpoints_and_settings_are_what_the_router_takes(monkeypatch):
    # One type: an application can hand the config's endpoints and breaker settings
    # to the Python API as they are.
    monkeypatch.setenv("PRIMARY_KEY", "k")
    config = load_config(CONFIG)
    options = RouterOptions(breaker=config.breaker, deadline=config.deadline)
    async with Router(config.endpoints, options=options) as router:
        router.isolate("primary")
        answer = await router.complete(chat("hi"), model="local")
    assert answer.text == "from the local model"
    assert config.breaker == BreakerConfig(open_for="10s")


async def test_a_scripted_endpoint_given_to_the_python_api_answers_its_reply():
    endpoint = Endpoint(id="local", provider="scripted", model="tiny", reply="canned")
    async with Router([endpoint]) as router:
        answer = await router.complete(chat("hi"), model="local")
    assert answer.text == "canned"
