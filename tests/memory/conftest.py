"""One store suite, three real backends: a temp SQLite file, PostgreSQL, Redis.

`make_store()` opens a store on this test's own fresh backing data (a new file, a new
PostgreSQL schema `test_<random>`, a random Redis key prefix) and can be called again
for a second store on the same data — a second replica. Everything is removed after the
test. A service that does not answer skips its tests, except under CI=true, where it
fails them: in CI a test that needs Redis or PostgreSQL must run.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import asyncpg
import pytest
import redis.asyncio as aioredis
from memory_support import POSTGRES_DSN, REDIS_URL, Wall, require_postgres, require_redis

from bastion.memory import PostgresStore, RedisStore, SqliteStore

BACKENDS = ["sqlite", "postgres", "redis"]


@pytest.fixture
def wall() -> Wall:
    return Wall()


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


MakeStore = Callable[..., Awaitable[Any]]


@pytest.fixture
async def make_store(backend: str, tmp_path: Any, wall: Wall) -> AsyncIterator[MakeStore]:
    """`await make_store(cls=None, setup=True, **options)` → a store on this test's data."""
    opened: list[Any] = []
    tag = uuid.uuid4().hex[:12]
    build: Callable[..., Any]
    if backend == "sqlite":

        def build(cls: Any = SqliteStore, **kw: Any) -> Any:
            return cls(tmp_path / "memory.db", clock=wall, **kw)

    elif backend == "postgres":
        await require_postgres()
        schema = f"test_{tag}"

        def build(cls: Any = PostgresStore, **kw: Any) -> Any:
            return cls(POSTGRES_DSN, schema=schema, clock=wall, pool_size=4, **kw)

    else:
        await require_redis()
        prefix = f"test:{tag}:"

        def build(cls: Any = RedisStore, **kw: Any) -> Any:
            return cls(REDIS_URL, prefix=prefix, clock=wall, **kw)

    async def make(cls: Any = None, *, setup: bool = True, **options: Any) -> Any:
        store = build(**options) if cls is None else build(cls, **options)
        opened.append(store)
        if setup:
            await store.setup()
        return store

    yield make

    for store in opened:
        await store.close()
    if backend == "postgres":
        conn = await asyncpg.connect(POSTGRES_DSN)
        await conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
        await conn.close()
    elif backend == "redis":
        client = aioredis.Redis.from_url(REDIS_URL)
        keys = [k async for k in client.scan_iter(match=f"{prefix}*", count=500)]
        if keys:
            await client.delete(*keys)
        await client.aclose()


@pytest.fixture
async def store(make_store: MakeStore) -> Any:
    return await make_store()
