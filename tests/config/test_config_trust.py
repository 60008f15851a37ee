"""An admin key is not a shell on the host: what a config may import and read.

A config names callables to import and environment variables to read. The file the
server starts from may name its operator's own modules, and modules it lists in
`server.tool_modules`; a config sent over HTTP is held to that file's policy, and may
read only the variables that file references or lists in `server.env_allow`. Every
refusal comes before the import, and before the variable is read.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
from config_support import BASE, Serve
from structlog.testing import capture_logs

from bastion.agents.configure import plan_agents
from bastion.cli import main
from bastion.config import ConfigError, load_config

if TYPE_CHECKING:
    from bastion.config import ConfigTrust


def agent(*tools: str) -> str:
    listed = ", ".join(f'"{t}"' for t in tools)
    return f"agents:\n  support: {{instructions: Help., model: a, tools: [{listed}]}}\n"


def file_trust(tmp_path: Path, text: str) -> ConfigTrust:
    path = tmp_path / "start.yaml"
    path.write_text(text)
    trust = load_config(path).trust
    assert trust is not None
    return trust


# --- the file the server starts from ---------------------------------------------------


def test_a_standard_library_tool_in_a_file_is_refused_before_it_is_imported(tmp_path) -> None:
    # `this` prints the Zen of Python when imported: an import we can see.
    assert "this" not in sys.modules
    path = tmp_path / "bastion.yaml"
    path.write_text(BASE + agent("this:s"))
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    assert str(caught.value) == (
        f"{path}, line 5: agents.support.tools[0]: 'this:s' is outside the allowed tool "
        "modules (server.tool_modules)"
    )
    assert "this" not in sys.modules


def test_os_system_is_refused_by_check_config_and_serve(tmp_path, capsys) -> None:
    path = tmp_path / "bastion.yaml"
    path.write_text(BASE + agent("os:system"))
    assert main(["check-config", str(path)]) == 1
    assert main(["serve", "-c", str(path), "--port", "0"]) == 2
    err = capsys.readouterr().err
    assert err.count("agents.support.tools[0]: 'os:system' is outside the allowed tool") == 2
    assert "Traceback" not in err


def test_an_installed_package_is_refused_unless_listed(tmp_path) -> None:
    text = BASE + agent("yaml:safe_load")
    with pytest.raises(ConfigError, match="'yaml:safe_load' is outside the allowed"):
        load_config(text)
    listed = load_config(text + "server: {tool_modules: [yaml]}\n")
    assert listed.trust is not None and listed.trust.allows_module("yaml")


def test_listing_a_module_allows_it_on_dotted_boundaries_only() -> None:
    config = load_config(BASE + "server: {tool_modules: [json]}\n")
    trust = config.trust
    assert trust is not None
    assert trust.allows_module("json") and trust.allows_module("json.decoder")
    assert not trust.allows_module("jsonschema") and not trust.allows_module("os")


def test_the_operators_own_module_and_the_demo_tools_need_no_listing(tmp_path, own_module):
    name = own_module("shop_tools_a")
    config = load_config(BASE + agent(f"{name}:lookup", "bastion.demo.tools:lookup_order"))
    assert [t.name for t in plan_agents(config)["support"].tools] == ["lookup", "lookup_order"]


def test_the_rest_of_bastion_is_not_the_operators_code() -> None:
    with pytest.raises(ConfigError, match=r"'bastion\.server\.runner:serve' is outside"):
        load_config(BASE + agent("bastion.server.runner:serve"))


def test_a_degraded_handler_is_judged_like_a_tool() -> None:
    text = BASE + "models:\n  chat: {targets: [a], degraded: {handler: 'os:system'}}\n"
    with pytest.raises(ConfigError, match=r"models.chat.degraded.handler: 'os:system' is outside"):
        load_config(text)


def test_a_config_from_python_code_is_trusted_as_before() -> None:
    config = load_config(
        {
            "endpoints": [
                {"id": "a", "provider": "openai", "model": "m", "base_url": "http://x/v1"}
                | {"api_key": "sk-1"}
            ],
            "agents": {"s": {"instructions": "x", "model": "a", "tools": ["os:getcwd"]}},
        }
    )
    assert config.endpoints[0].api_key == "sk-1"


def test_the_trust_settings_must_be_written_as_they_are() -> None:
    with pytest.raises(ConfigError, match=r"server.tool_modules\[0\]: String should match"):
        load_config(BASE + "server: {tool_modules: ['${MODULES}']}\n")


# --- a config sent over HTTP -----------------------------------------------------------


def test_an_http_config_may_not_widen_the_tool_modules(tmp_path) -> None:
    trust = file_trust(tmp_path, BASE + "server: {tool_modules: [json]}\n")
    with pytest.raises(ConfigError) as caught:
        load_config(BASE + "server: {tool_modules: [json, os]}\n", trust=trust)
    assert caught.value.field == "server.tool_modules"
    assert "may not differ from the server's config file" in str(caught.value)
    # Saying the same is no change.
    load_config(BASE + "server: {tool_modules: [json]}\n", trust=trust)


def test_an_http_config_may_use_only_the_files_modules(tmp_path, own_module) -> None:
    mine, other = own_module("shop_tools_b"), own_module("shop_tools_c")
    trust = file_trust(tmp_path, BASE + agent(f"{mine}:lookup"))
    load_config(BASE + agent(f"{mine}:lookup"), trust=trust)
    with pytest.raises(ConfigError, match=r"agents.support.tools\[0\]: 'shop_tools_c:lookup'"):
        load_config(BASE + agent(f"{other}:lookup"), trust=trust)
    assert other not in sys.modules


class ReadEnviron(dict[str, str]):
    """The process environment, noting each variable read."""

    def __init__(self, values: dict[str, str]) -> None:
        super().__init__(values)
        self.read: list[str] = []

    def get(self, key: str, default: Any = None) -> Any:  # type: ignore[override]
        self.read.append(key)
        return super().get(key, default)

    def __getitem__(self, key: str) -> str:
        self.read.append(key)
        return super().__getitem__(key)


@pytest.fixture
def environ(monkeypatch) -> Iterator[ReadEnviron]:
    fake = ReadEnviron({**os.environ, "UPSTREAM_KEY": "sk-upstream", "DB_PASSWORD": "pw-db"})
    monkeypatch.setattr(os, "environ", fake)
    yield fake


def endpoint_with_key(variable: str) -> str:
    return (
        "endpoints:\n"
        "  - id: a\n    provider: openai\n    model: m\n"
        "    base_url: http://127.0.0.1:9/v1\n"
        f"    api_key: ${{{variable}}}\n"
    )


def test_an_http_config_reads_no_variable_the_file_does_not(tmp_path, environ) -> None:
    trust = file_trust(tmp_path, endpoint_with_key("UPSTREAM_KEY"))
    environ.read.clear()
    with pytest.raises(ConfigError) as caught:
        load_config(endpoint_with_key("DB_PASSWORD"), trust=trust)
    assert caught.value.field == "endpoints[0].api_key"
    assert "environment variable DB_PASSWORD is not one this server's config file" in str(
        caught.value
    )
    assert "DB_PASSWORD" not in environ.read
    assert "pw-db" not in str(caught.value)
    assert load_config(endpoint_with_key("UPSTREAM_KEY"), trust=trust).endpoints[0].api_key == (
        "sk-upstream"
    )


def test_env_allow_lets_an_http_config_read_a_variable(tmp_path, environ) -> None:
    trust = file_trust(tmp_path, BASE + "server: {env_allow: [DB_PASSWORD]}\n")
    config = load_config(endpoint_with_key("DB_PASSWORD"), trust=trust)
    assert config.endpoints[0].api_key == "pw-db"


def test_the_narrowest_policy_reads_nothing_and_imports_only_the_demo_tools(environ) -> None:
    from bastion.config import ConfigTrust

    with pytest.raises(ConfigError, match="UPSTREAM_KEY"):
        load_config(endpoint_with_key("UPSTREAM_KEY"), trust=ConfigTrust())
    assert "UPSTREAM_KEY" not in environ.read
    load_config(BASE + agent("bastion.demo.tools:lookup_order"), trust=ConfigTrust())


# --- over the API and by SIGHUP --------------------------------------------------------


async def test_put_config_refuses_os_system_with_a_400_and_an_audit_line(serve: Serve) -> None:
    served = await serve(BASE)
    with capture_logs() as logs:
        status, body = await served.put_config(BASE + agent("os:system"))
    assert status == 400
    error = body["error"]
    assert (error["code"], error["param"]) == ("invalid_config", "agents.support.tools[0]")
    assert error["message"] == (
        "invalid config: line 5: agents.support.tools[0]: 'os:system' is outside the "
        "allowed tool modules (server.tool_modules)"
    )
    [audit] = [e for e in logs if e["event"] == "audit"]
    assert audit["outcome"] == (
        "rejected: agents.support.tools[0]: 'os:system' is outside the allowed tool modules "
        "(server.tool_modules)"
    )
    assert "support" not in served.gateway.agents.plans


async def test_put_config_cannot_send_an_environment_variable_away(
    serve: Serve, monkeypatch
) -> None:
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "aws-secret-value")
    served = await serve(BASE)
    status, body = await served.put_config(
        endpoint_with_key("AWS_SECRET_ACCESS_KEY").replace("127.0.0.1:9", "attacker.test")
    )
    assert status == 400
    assert body["error"]["param"] == "endpoints[0].api_key"
    assert "AWS_SECRET_ACCESS_KEY" in body["error"]["message"]
    assert "aws-secret-value" not in str(body)
    assert [e.id for e in served.gateway.config.endpoints] == ["a"]


async def test_sighup_rereads_the_files_policy(serve: Serve, own_module) -> None:
    name = own_module("shop_tools_d")
    served = await serve(BASE)
    status, _ = await served.put_config(BASE + agent(f"{name}:lookup"))
    assert status == 400
    served.path.write_text(BASE + f"server: {{tool_modules: [{name}]}}\n")
    await served.gateway.reload_from_source()
    status, body = await served.put_config(
        BASE + f"server: {{tool_modules: [{name}]}}\n" + agent(f"{name}:lookup")
    )
    assert status == 200, body
