"""`open_store(url)`: the store a URL names, connected and migrated.

    sqlite:///relative/path.db   sqlite:////absolute/path.db   sqlite://:memory:
    postgresql://user:pass@host:5432/db  (or postgres://)
    redis://host:6379/0  (or rediss://, unix://)

Each backend is imported only when its URL is opened, so a process that keeps memory in
SQLite never loads the PostgreSQL or Redis clients.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

from bastion.memory.base import MemoryStore


async def open_store(url: str, **options: Any) -> MemoryStore:
    """The store for `url`, with `setup()` done; `options` go to the store's constructor
    (e.g. `schema=` for PostgreSQL, `prefix=` for Redis). ValueError for other schemes."""
    scheme = urlsplit(url).scheme.lower()
    store: MemoryStore
    if scheme == "sqlite":
        from bastion.memory.sqlite import SqliteStore

        store = SqliteStore(sqlite_path(url), **options)
    elif scheme in ("postgresql", "postgres"):
        from bastion.memory.postgres import PostgresStore

        store = PostgresStore(url, **options)
    elif scheme in ("redis", "rediss", "unix"):
        from bastion.memory.redis_store import RedisStore

        store = RedisStore(url, **options)
    else:
        raise ValueError(
            f"unsupported memory store URL {url!r}: use sqlite://, postgresql:// or redis://"
        )
    await store.setup()
    return store


def sqlite_path(url: str) -> str:
    """The file a `sqlite://` URL names, SQLAlchemy-style: three slashes before a
    relative path, four before an absolute one; `sqlite://:memory:` for no file."""
    rest = url[len("sqlite://") :]
    if rest in (":memory:", "/:memory:", ""):
        return ":memory:"
    if not rest.startswith("/"):
        raise ValueError(f"expected sqlite:///path or sqlite://:memory:, got {url!r}")
    return rest[1:]
