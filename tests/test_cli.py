"""`bastion check-config`: a good file passes, a bad one names the field and fails."""

from __future__ import annotations

from bastion.cli import main

GOOD = """\
endpoints:
  - {id: a, provider: scripted, model: m, reply: hi}
models: {chat: {targets: [a]}}
agents:
  support: {instructions: "Help.", model: chat, tools: ["bastion.demo.tools:lookup_order"]}
memory: {store: "sqlite://:memory:"}
"""


def test_check_config_accepts_a_good_file(tmp_path, capsys):
    path = tmp_path / "bastion.yaml"
    path.write_text(GOOD)
    assert main(["check-config", str(path)]) == 0
    assert "1 agent(s)" in capsys.readouterr().out


def test_check_config_imports_agent_tools_and_names_a_bad_one(tmp_path, capsys):
    path = tmp_path / "bastion.yaml"
    path.write_text(GOOD.replace('"bastion.demo.tools:lookup_order"', '"nowhere:fn"'))
    assert main(["check-config", str(path)]) == 1
    assert "agents.support.tools[0]" in capsys.readouterr().err


def test_check_config_names_the_line_of_a_bad_value(tmp_path, capsys):
    path = tmp_path / "bastion.yaml"
    path.write_text(GOOD.replace("reply: hi", "reply: hi, weight: -1"))
    assert main(["check-config", str(path)]) == 1
    err = capsys.readouterr().err
    assert "line 2" in err and "endpoints[0].weight" in err
