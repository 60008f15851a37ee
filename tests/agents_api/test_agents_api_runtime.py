"""Agents from config: tools imported by path (errors name the field), model specs with
per-entry retries, instructions with context placeholders."""

from __future__ import annotations

from typing import Any

import pytest
import yaml
from hypothesis import given
from hypothesis import strategies as st

from bastion.agents import MissingContext
from bastion.agents.configure import ContextTemplate, instructions_of, plan_agents
from bastion.config import ConfigError, load_config
from bastion.routing import Target
from bastion.server.runner import serve
from bastion.types import RuntimeContext


def config(tools: list[str], **agent: Any) -> Any:
    return load_config(
        {
            "endpoints": [{"id": "a", "provider": "scripted", "model": "m"}],
            "agents": {"support": {"instructions": "Hi", "model": "a", "tools": tools, **agent}},
        }
    )


@pytest.mark.parametrize(
    ("path", "says"),
    [
        ("bastion.demo.nowhere:tool", "cannot import 'bastion.demo.nowhere:tool'"),
        ("bastion.demo.tools:nope", "cannot import 'bastion.demo.tools:nope'"),
        ("bastion.demo.tools:ORDERS", "is not a function or a @tool"),
        ("bastion.demo.tools:ZoneInfo", "is not a function or a @tool"),
        ("os.path:join", "cannot be a tool"),
    ],
)
def test_a_tool_that_cannot_be_loaded_is_a_config_error_naming_the_field(path, says) -> None:
    with pytest.raises(ConfigError) as caught:
        plan_agents(config(["bastion.demo.tools:get_time", path]))

    assert str(caught.value).startswith("agents.support.tools[1]: ")
    assert says in str(caught.value)


def test_two_tools_of_one_name_are_a_config_error() -> None:
    tools = ["bastion.demo.tools:get_time", "bastion.demo.tools:get_time"]

    with pytest.raises(ConfigError, match=r"agents\.support\.tools\[1\]: a second tool"):
        plan_agents(config(tools))


def test_a_plain_typed_function_becomes_a_tool() -> None:
    [plan] = plan_agents(config(["agents_api_support:bearer"])).values()

    [made] = plan.tools
    assert (made.name, made.parameters["required"]) == ("bearer", ["key"])


def test_a_fallback_list_keeps_each_entrys_retries() -> None:
    cfg = load_config(
        {
            "endpoints": [
                {"id": "a", "provider": "scripted", "model": "m"},
                {"id": "b", "provider": "scripted", "model": "m"},
            ],
            "agents": {"x": {"instructions": "Hi", "model": [{"model": "a", "retries": 0}, "b"]}},
        }
    )

    assert plan_agents(cfg)["x"].model == [Target("a", 0), "b"]


def test_instructions_without_placeholders_stay_plain_text() -> None:
    assert instructions_of("Be kind. {Not a placeholder}") == "Be kind. {Not a placeholder}"
    assert instructions_of("Kept as written: {{name}}") == "Kept as written: {{name}}"
    assert isinstance(instructions_of("Hello {name}"), ContextTemplate)
    assert isinstance(instructions_of("Hello {name|you}"), ContextTemplate)


def test_a_template_fills_known_keys_as_text_others_as_json_and_defaults_the_rest() -> None:
    template = ContextTemplate("{name} has {plan} and {extra|no extras}; {{json}}")

    text = template(RuntimeContext(name="Ada", plan={"seats": 3}))

    assert text == 'Ada has {"seats":3} and no extras; {{json}}'


def test_a_template_refuses_a_context_without_a_value_it_needs() -> None:
    template = ContextTemplate("{tier} {region|EU} {plan} {tier} {{other}}")

    assert template.missing_context(RuntimeContext(plan="pro")) == ("tier",)
    assert template.missing_context(RuntimeContext()) == ("tier", "plan")
    with pytest.raises(MissingContext) as caught:
        template(RuntimeContext(region="US"))
    assert caught.value.keys == ("tier", "plan")
    assert "'tier', 'plan'" in str(caught.value)


_KEY = st.from_regex(r"[a-z_][a-z0-9_]{0,6}", fullmatch=True)
_TEXT = st.text(st.characters(blacklist_characters="{}|", codec="utf-8"), max_size=8)


@given(
    parts=st.lists(st.tuples(_TEXT, _KEY, st.one_of(st.none(), _TEXT)), max_size=6),
    given_keys=st.dictionaries(_KEY, _TEXT, max_size=6),
)
def test_a_template_renders_every_placeholder_or_names_every_missing_key(
    parts: list[tuple[str, str, str | None]], given_keys: dict[str, str]
) -> None:
    text = "".join(
        f"{lead}{{{key}}}" if d is None else f"{lead}{{{key}|{d}}}" for lead, key, d in parts
    )
    template = ContextTemplate(text)
    context = RuntimeContext(given_keys)
    needed = [key for _, key, d in parts if d is None and key not in given_keys]

    if needed:
        with pytest.raises(MissingContext) as caught:
            template(context)
        assert caught.value.keys == tuple(dict.fromkeys(needed))
    else:
        expected = "".join(
            lead + (given_keys[key] if key in given_keys else str(d)) for lead, key, d in parts
        )
        assert template(context) == expected


def test_bastion_serve_refuses_a_bad_tool_path_before_it_starts(tmp_path, capsys) -> None:
    source = tmp_path / "bastion.yaml"
    source.write_text(
        yaml.safe_dump(
            {
                "endpoints": [{"id": "a", "provider": "scripted", "model": "m"}],
                "agents": {"s": {"instructions": "Hi", "model": "a", "tools": ["nowhere:tool"]}},
            }
        )
    )

    assert serve(str(source), "127.0.0.1", 0, 1) == 2
    assert "agents.s.tools[0]: cannot import 'nowhere:tool'" in capsys.readouterr().err
