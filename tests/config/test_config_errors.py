"""Errors that say where: a file that is not UTF-8, an entry that names another that
is not there, a wrong type inside a union; the reason of a refused reload in its audit
line; and when the live config was loaded."""

from __future__ import annotations

import time

import pytest
from config_support import BASE, Serve
from structlog.testing import capture_logs

from bastion.cli import main
from bastion.config import ConfigError, load_config

LATIN_1 = BASE.encode() + "# café\n".encode("latin-1")


def test_a_file_that_is_not_utf8_is_a_config_error_naming_it(tmp_path, capsys) -> None:
    path = tmp_path / "bastion.yaml"
    path.write_bytes(LATIN_1)
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    assert str(caught.value).startswith(f"{path}: the config is not UTF-8 text")
    assert main(["check-config", str(path)]) == 1
    assert main(["serve", "-c", str(path), "--port", "0"]) == 2
    err = capsys.readouterr().err
    assert err.count(f"error: {path}: the config is not UTF-8 text") == 2
    assert "Traceback" not in err


async def test_sighup_on_a_file_that_is_not_utf8_names_it_and_changes_nothing(
    serve: Serve,
) -> None:
    served = await serve(BASE)
    config = served.gateway.config
    served.path.write_bytes(LATIN_1)
    with capture_logs() as logs:
        await served.gateway.reload_from_source()
    [refused] = [e for e in logs if e["event"] == "config reload refused"]
    assert refused["file"] == str(served.path)
    assert "not UTF-8" in refused["error"]
    [audit] = [e for e in logs if e["event"] == "audit"]
    assert (audit["target"], audit["outcome"]) == (
        str(served.path),
        f"rejected: the config is not UTF-8 text (byte {LATIN_1.index(b'caf') + 3} cannot be "
        "decoded)",
    )
    assert served.gateway.config is config


TWO = """\
endpoints:
  - {id: a, provider: scripted, model: m}
  - {id: b, provider: scripted, model: m}
"""


@pytest.mark.parametrize(
    ("extra", "field", "line", "says"),
    [
        ("  - {id: a, provider: scripted, model: m}\n", "endpoints[2].id", 4, "duplicate"),
        ("models:\n  g:\n    targets:\n      - a\n      - c\n", "models.g.targets[1]", 8, "'c'"),
        ("models:\n  g: {targets: [a], fallbacks: [x]}\n", "models.g.fallbacks[0]", 5, "'x'"),
        ("models:\n  a: {targets: [b]}\n", "models.a", 5, "names an endpoint too"),
        ("default_model: nope\n", "default_model", 4, "'nope'"),
        ("agents:\n  s: {instructions: x, model: [a, z]}\n", "agents.s.model[1]", 5, "'z'"),
        (
            "auth:\n  keys:\n    - key: ${K1:-key-0123456789}\n      name: k\n"
            "      models: [a, nope]\n",
            "auth.keys[0].models[1]",
            8,
            "'nope'",
        ),
        (
            "auth:\n  keys:\n    - {key: '${K1:-key-0123456789}', name: k}\n"
            "    - {key: '${K2:-key-9876543210}', name: k}\n",
            "auth.keys[1].name",
            7,
            "duplicate key name 'k'",
        ),
    ],
)
def test_a_cross_reference_error_points_at_the_entry(extra, field, line, says) -> None:
    with pytest.raises(ConfigError) as caught:
        load_config(TWO + extra)
    assert caught.value.field == field
    assert caught.value.line == line
    assert str(caught.value).startswith(f"<config>, line {line}: {field}: ")
    assert says in str(caught.value)


def test_a_wrong_type_inside_a_union_reads_as_one_message() -> None:
    with pytest.raises(ConfigError) as caught:
        load_config(TWO + "models:\n  g:\n    targets:\n      - {model: a, retries: x}\n")
    assert str(caught.value) == (
        "<config>, line 7: models.g.targets[0].retries: Input should be a valid integer"
    )


async def test_a_refused_put_is_audited_with_its_reason(serve: Serve) -> None:
    served = await serve(BASE)
    with capture_logs() as logs:
        status, _ = await served.put_config(BASE + "deadline: soon\n")
    assert status == 400
    [audit] = [e for e in logs if e["event"] == "audit"]
    assert audit["outcome"] == (
        "rejected: deadline: not a duration: 'soon' (use e.g. 250ms, 2s, 5m, 1h)"
    )


async def test_status_says_when_the_live_config_was_loaded_whatever_its_origin(
    serve: Serve,
) -> None:
    before = time.time()
    served = await serve(BASE)
    started = (await served.status())["config"]
    assert started["origin"] == "file"
    assert before <= started["loaded_at"] <= time.time()

    served.path.write_text(BASE + "deadline: 30s\n")
    await served.gateway.reload_from_source()
    reloaded = (await served.status())["config"]
    assert reloaded["origin"] == "file"
    assert reloaded["loaded_at"] >= started["loaded_at"]
    assert served.gateway.config.deadline == 30.0

    status, _ = await served.put_config(BASE + "deadline: 20s\n")
    assert status == 200
    put = (await served.status())["config"]
    assert put["origin"] == "api" and put["loaded_at"] >= reloaded["loaded_at"]
