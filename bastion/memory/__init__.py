"""Memory: threads of messages, turns that never interleave, working memory, run steps.

`Memory` is what agents use; a `MemoryStore` (SQLite, PostgreSQL, Redis) is where it
lives; `open_store(url)` picks and opens one. The store classes load on first use, so
importing this package never imports a database client it will not need.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from bastion.memory._support import FaultHook, SchemaTooNew, WallClock
from bastion.memory.base import (
    INTERRUPTED,
    CorruptRecord,
    MemoryStore,
    MemoryStoreError,
    Recovered,
    RunRecord,
    Scope,
    StepRecord,
    Thread,
    ThreadBusy,
    ThreadConflict,
    ThreadNotFound,
    WrongResource,
)
from bastion.memory.factory import open_store
from bastion.memory.memory import Memory, Turn

if TYPE_CHECKING:
    from bastion.memory.postgres import PostgresStore
    from bastion.memory.redis_store import RedisStore
    from bastion.memory.sqlite import SqliteStore

_STORES = {
    "SqliteStore": "bastion.memory.sqlite",
    "PostgresStore": "bastion.memory.postgres",
    "RedisStore": "bastion.memory.redis_store",
}


def __getattr__(name: str) -> Any:
    if name in _STORES:
        return getattr(importlib.import_module(_STORES[name]), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "INTERRUPTED",
    "CorruptRecord",
    "FaultHook",
    "Memory",
    "MemoryStore",
    "MemoryStoreError",
    "PostgresStore",
    "Recovered",
    "RedisStore",
    "RunRecord",
    "SchemaTooNew",
    "Scope",
    "SqliteStore",
    "StepRecord",
    "Thread",
    "ThreadBusy",
    "ThreadConflict",
    "ThreadNotFound",
    "Turn",
    "WallClock",
    "WrongResource",
    "open_store",
]
