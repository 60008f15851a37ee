"""`check_store`: what `bastion check-config` and `bastion serve` ask of a store URL
before anything starts. It creates nothing, and never shows a password."""

from __future__ import annotations

import os
import socket
from pathlib import Path

import pytest
from memory_support import POSTGRES_DSN, REDIS_URL, require_postgres, require_redis

from bastion.memory.check import check_store


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


async def test_a_sqlite_file_in_a_missing_directory_is_refused_with_the_url_rule(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ValueError) as refused:
        await check_store("sqlite:///missing/bastion.db")
    message = str(refused.value)
    assert "'missing'" in message and "does not exist" in message
    assert str(tmp_path) in message  # relative to the working directory, and it says so
    assert "sqlite:////absolute" in message
    assert not (tmp_path / "missing").exists()


async def test_a_sqlite_file_in_a_writable_directory_passes_and_is_not_created(
    tmp_path: Path,
) -> None:
    target = tmp_path / "bastion.db"
    said = await check_store(f"sqlite:///{target}")  # four slashes: absolute
    assert str(target) in said
    assert not target.exists()


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes anywhere")
async def test_a_sqlite_file_in_a_read_only_directory_is_refused(tmp_path: Path) -> None:
    directory = tmp_path / "ro"
    directory.mkdir()
    directory.chmod(0o500)
    try:
        with pytest.raises(ValueError, match="not writable"):
            await check_store(f"sqlite:///{directory}/bastion.db")
    finally:
        directory.chmod(0o700)


async def test_a_directory_where_the_sqlite_file_should_be_is_refused(tmp_path: Path) -> None:
    (tmp_path / "bastion.db").mkdir()
    with pytest.raises(ValueError, match="is not a file"):
        await check_store(f"sqlite:///{tmp_path}/bastion.db")


async def test_sqlite_in_memory_has_nothing_to_check() -> None:
    assert "nothing to check" in await check_store("sqlite://:memory:")


async def test_a_reachable_postgres_passes() -> None:
    await require_postgres()
    assert "connected" in await check_store(POSTGRES_DSN)


async def test_a_reachable_redis_passes() -> None:
    await require_redis()
    assert "connected" in await check_store(REDIS_URL)


@pytest.mark.parametrize("scheme", ["postgresql", "redis"])
async def test_an_unreachable_store_is_refused_without_its_password(scheme: str) -> None:
    url = f"{scheme}://user:s3cret-pw@127.0.0.1:{closed_port()}/0"
    with pytest.raises(ValueError) as refused:
        await check_store(url, connect_timeout=2.0)
    message = str(refused.value)
    assert message.startswith("cannot connect to ")
    assert "s3cret-pw" not in message and "user:***@" in message
