"""`open_store(url)` picks the backend from the URL and hands back a ready store."""

from __future__ import annotations

import uuid

import pytest
from memory_support import POSTGRES_DSN, REDIS_URL, require_postgres, require_redis

from bastion.memory import Memory, PostgresStore, RedisStore, SqliteStore, open_store
from bastion.memory.factory import sqlite_path
from bastion.types import Message


@pytest.mark.parametrize(
    ("url", "path"),
    [
        ("sqlite:///bastion.db", "bastion.db"),
        ("sqlite:///data/bastion.db", "data/bastion.db"),
        ("sqlite:////var/lib/bastion.db", "/var/lib/bastion.db"),
        ("sqlite://:memory:", ":memory:"),
    ],
)
def test_sqlite_urls_name_a_file_or_memory(url, path):
    assert sqlite_path(url) == path


async def test_an_unknown_scheme_is_a_clear_error():
    with pytest.raises(ValueError, match="sqlite://, postgresql:// or redis://"):
        await open_store("mysql://localhost/db")


async def test_sqlite_in_memory_is_ready_to_use():
    store = await open_store("sqlite://:memory:")
    try:
        assert isinstance(store, SqliteStore)
        async with Memory(store).turn("t", "alice") as turn:
            await turn.commit([Message("user", "hi")])
        assert [m.content for m in await store.messages("t")] == ["hi"]
    finally:
        await store.close()


async def test_a_sqlite_file_url_opens_that_file(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    store = await open_store("sqlite:///memory.db")
    await store.close()
    assert (tmp_path / "memory.db").exists()


async def test_postgres_and_redis_urls_open_their_stores():
    await require_postgres()
    await require_redis()
    schema = f"test_{uuid.uuid4().hex[:12]}"
    pg = await open_store(POSTGRES_DSN, schema=schema)
    rd = await open_store(REDIS_URL, prefix=f"test:{schema}:")
    try:
        assert isinstance(pg, PostgresStore)
        assert isinstance(rd, RedisStore)
        assert await pg.schema_version() == len(pg.migrations)
        assert await rd.schema_version() == len(rd.migrations)
    finally:
        await pg._db.execute(f'DROP SCHEMA "{schema}" CASCADE')
        await rd._db.delete(f"test:{schema}:schema_version")
        await pg.close()
        await rd.close()
