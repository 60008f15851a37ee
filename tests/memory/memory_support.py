"""What the memory tests share besides fixtures: where the services are, and how a
test reacts when one is not there (skip — or, under CI=true, fail)."""

from __future__ import annotations

import os
import time

import asyncpg
import pytest
import redis.asyncio as aioredis

POSTGRES_DSN = os.environ.get(
    "BASTION_TEST_POSTGRES", "postgresql://bastion:bastion@127.0.0.1:5432/bastion"
)
REDIS_URL = os.environ.get("BASTION_TEST_REDIS", "redis://127.0.0.1:6379/15")


class Wall:
    """The stores' wall clock: real time plus an offset a test can move forward, so
    threads can be made idle without sleeping."""

    def __init__(self) -> None:
        self.offset = 0.0

    def __call__(self) -> float:
        return time.time() + self.offset

    def advance(self, seconds: float) -> None:
        self.offset += seconds


def unavailable(service: str, exc: BaseException) -> None:
    message = f"{service} is not reachable ({exc!r}); run `make services`"
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"{message} — under CI=true this is a failure, not a skip")
    pytest.skip(message)


async def require_postgres() -> None:
    try:
        conn = await asyncpg.connect(POSTGRES_DSN, timeout=3)
    except (OSError, asyncpg.PostgresError, TimeoutError) as exc:
        unavailable("PostgreSQL", exc)
    else:
        await conn.close()


async def require_redis() -> None:
    client = aioredis.Redis.from_url(REDIS_URL, socket_connect_timeout=3)
    try:
        await client.ping()
    except (OSError, aioredis.RedisError) as exc:
        unavailable("Redis", exc)
    finally:
        await client.aclose()
