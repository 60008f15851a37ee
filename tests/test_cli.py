"""`bastion check-config`: a good file passes, a bad one names the field and fails; and
`bastion serve --loop`."""

from __future__ import annotations

import sys

import pytest

from bastion.cli import main
from bastion.server.runner import loop_factory

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


def test_serve_refuses_uvloop_when_it_is_not_installed(tmp_path, capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, "uvloop", None)  # import uvloop now raises ImportError
    path = tmp_path / "bastion.yaml"
    path.write_text(GOOD)
    assert main(["serve", "-c", str(path), "--loop", "uvloop"]) == 2
    assert "bastion[fast]" in capsys.readouterr().err


def test_auto_loop_is_asyncio_without_uvloop_and_uvloop_with_it(monkeypatch):
    assert loop_factory("asyncio") is None
    with monkeypatch.context() as patched:
        patched.setitem(sys.modules, "uvloop", None)
        assert loop_factory("auto") is None
    uvloop = pytest.importorskip("uvloop")
    assert loop_factory("auto") is uvloop.new_event_loop
    with pytest.raises(ValueError, match="unknown event loop 'trio'"):
        loop_factory("trio")


def test_check_config_refuses_a_sqlite_store_whose_directory_is_missing(
    tmp_path, capsys, monkeypatch
):
    monkeypatch.chdir(tmp_path)
    path = tmp_path / "bastion.yaml"
    path.write_text(GOOD.replace("sqlite://:memory:", "sqlite:///nowhere/bastion.db"))
    assert main(["check-config", str(path)]) == 1
    err = capsys.readouterr().err
    assert "memory.store" in err and "'nowhere'" in err and "does not exist" in err
    assert not (tmp_path / "nowhere").exists()


def test_check_config_checks_a_sqlite_store_without_creating_it(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    path = tmp_path / "bastion.yaml"
    path.write_text(GOOD.replace("sqlite://:memory:", "sqlite:///bastion.db"))
    assert main(["check-config", str(path)]) == 0
    assert "directory writable" in capsys.readouterr().out
    assert not (tmp_path / "bastion.db").exists()
