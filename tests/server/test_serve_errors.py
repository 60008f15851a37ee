"""`bastion serve` that cannot start says why in one line on stderr and exits 2: no
traceback, and never a half-started gateway. Real processes, each bounded in time."""

from __future__ import annotations

import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

BIN = Path(sys.executable).parent / "bastion"
# A failed start takes an interpreter's start-up and a config load: seconds at most.
BOUND = 30.0

CONFIG = """\
endpoints:
  - {id: a, provider: scripted, model: m, reply: hi}
models: {chat: {targets: [a]}}
"""
WITH_AGENT = (
    CONFIG
    + """\
agents:
  support: {instructions: "Help.", model: chat}
memory: {store: "sqlite:///no-such-directory/bastion.db"}
"""
)


def serve(config: Path, *args: str) -> subprocess.CompletedProcess[str]:
    try:
        return subprocess.run(
            [str(BIN), "serve", "-c", str(config), *args],
            capture_output=True,
            text=True,
            timeout=BOUND,
            cwd=config.parent,
        )
    except subprocess.TimeoutExpired as exc:  # it started serving: that is the failure
        pytest.fail(f"bastion serve {' '.join(args)} did not refuse to start: {exc.stdout!r}")


def refused(done: subprocess.CompletedProcess[str]) -> str:
    """The one line a refused start wrote on stderr."""
    assert done.returncode == 2, done.stdout + done.stderr
    assert "Traceback" not in done.stdout + done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    assert lines[0].startswith("error: ")
    return lines[0]


@pytest.fixture
def config(tmp_path: Path) -> Path:
    path = tmp_path / "bastion.yaml"
    path.write_text(CONFIG)
    return path


@pytest.fixture
def taken_port() -> Iterator[int]:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        yield sock.getsockname()[1]


@pytest.mark.parametrize("workers", ["1", "2"])
def test_a_port_in_use_is_one_line(config: Path, taken_port: int, workers: str) -> None:
    line = refused(serve(config, "--port", str(taken_port), "--workers", workers))
    assert f"127.0.0.1:{taken_port}" in line and "address already in use" in line


def test_a_port_out_of_range_is_one_line(config: Path) -> None:
    line = refused(serve(config, "--port", "99999"))
    assert "--port" in line and "99999" in line


@pytest.mark.parametrize("workers", ["0", "-1"])
def test_no_workers_is_an_error(config: Path, workers: str) -> None:
    line = refused(serve(config, "--port", "0", "--workers", workers))
    assert "--workers" in line


def test_a_sqlite_store_in_a_missing_directory_is_one_line(tmp_path: Path) -> None:
    path = tmp_path / "bastion.yaml"
    path.write_text(WITH_AGENT)
    line = refused(serve(path, "--port", "0"))
    assert "memory.store" in line and "no-such-directory" in line
    assert not (tmp_path / "no-such-directory").exists()
