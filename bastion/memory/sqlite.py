"""The embedded default store: one SQLite file, no server.

- WAL mode, so readers never wait for the writer and a crash mid-transaction leaves
  only frames past the last commit, which the next opener ignores.
- One writer connection, its transactions serialised by a lock and opened with
  `BEGIN IMMEDIATE`: the write lock is taken up front, so two turns can never both read
  version N and then both try to write (the classic SQLITE_BUSY upgrade deadlock). Other
  processes on the same file wait up to `busy_timeout` for the lock.
- One read-only connection for reads (a `:memory:` database is private to its connection,
  so there the writer reads too).

aiosqlite runs every call, in order, on the connection's own thread: a statement queued
by a task that was cancelled still runs, so each transaction ends with a COMMIT or a
ROLLBACK queued behind it, whatever happened to the task.
"""

from __future__ import annotations

import asyncio
import os
import sqlite3
import time
from collections.abc import AsyncIterator, Iterable, Mapping, Sequence
from contextlib import asynccontextmanager
from typing import Any, Literal

import aiosqlite

from bastion.memory import codec
from bastion.memory._support import FaultHook, SetupOnEnter, WallClock, pending
from bastion.memory.base import (
    MemoryStoreError,
    RunRecord,
    Scope,
    StepRecord,
    Thread,
    ThreadConflict,
    ThreadNotFound,
    WrongResource,
)
from bastion.types import Message

# Migration i takes the schema from version i to i + 1. Append, never edit: a database in
# the field is at some version and must get exactly the statements it has not had.
MIGRATIONS: tuple[tuple[str, ...], ...] = (
    (
        "CREATE TABLE threads (id TEXT PRIMARY KEY, resource_id TEXT NOT NULL, "
        "version INTEGER NOT NULL, created_at REAL NOT NULL, updated_at REAL NOT NULL, "
        "metadata TEXT NOT NULL)",
        "CREATE INDEX threads_by_resource ON threads (resource_id, updated_at)",
        "CREATE INDEX threads_by_updated ON threads (updated_at)",
        "CREATE TABLE messages (thread_id TEXT NOT NULL, seq INTEGER NOT NULL, "
        "body TEXT NOT NULL, PRIMARY KEY (thread_id, seq)) WITHOUT ROWID",
        "CREATE TABLE leases (thread_id TEXT PRIMARY KEY, owner TEXT NOT NULL, "
        "expires_at REAL NOT NULL)",
        "CREATE TABLE working_memory (scope TEXT NOT NULL, key TEXT NOT NULL, "
        "text TEXT NOT NULL, updated_at REAL NOT NULL, PRIMARY KEY (scope, key)) WITHOUT ROWID",
        "CREATE TABLE runs (id TEXT PRIMARY KEY, agent TEXT NOT NULL, thread_id TEXT, "
        "resource_id TEXT, status TEXT NOT NULL, started_at REAL NOT NULL, ended_at REAL, "
        "error TEXT)",
        'CREATE TABLE steps (run_id TEXT NOT NULL, "index" INTEGER NOT NULL, '
        "kind TEXT NOT NULL, name TEXT NOT NULL, input TEXT NOT NULL, output TEXT NOT NULL, "
        "status TEXT NOT NULL, started_at REAL NOT NULL, ended_at REAL NOT NULL, "
        'PRIMARY KEY (run_id, "index")) WITHOUT ROWID',
    ),
)

_SWEEP_BATCH = 500  # threads per sweep transaction: the writer lock is never held long


class SqliteStore(SetupOnEnter):
    """A `MemoryStore` in one SQLite file (or `":memory:"`). Call `setup()` first, or
    use `async with SqliteStore(path) as store:`."""

    migrations: tuple[tuple[str, ...], ...] = MIGRATIONS

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        busy_timeout: float = 5.0,
        clock: WallClock = time.time,
        fault_after_messages: FaultHook | None = None,
    ) -> None:
        self.path = os.fspath(path)
        self._busy_timeout = busy_timeout
        self._clock = clock
        self._fault = fault_after_messages
        self._writer: aiosqlite.Connection | None = None
        self._reader: aiosqlite.Connection | None = None
        self._in_memory = self.path == ":memory:" or self.path.startswith("file::memory:")
        self._write_lock = asyncio.Lock()
        # On ":memory:" both connections are one, so reads must queue behind writes.
        self._read_lock = self._write_lock if self._in_memory else asyncio.Lock()

    # --- lifecycle -----------------------------------------------------------------

    async def _connect(self) -> aiosqlite.Connection:
        # isolation_level=None: Python's sqlite3 must not open transactions behind our
        # back; every transaction here starts with an explicit BEGIN.
        conn = await aiosqlite.connect(self.path, isolation_level=None, timeout=self._busy_timeout)
        conn.row_factory = sqlite3.Row
        return conn

    async def setup(self) -> None:
        """Open the connections and bring the schema to the latest version; idempotent,
        and safe against another process doing the same (the migration runs under the
        write lock and re-reads the version inside it)."""
        if self._writer is None:
            self._writer = await self._connect()
            await self._writer.execute("PRAGMA journal_mode=WAL")
            # NORMAL in WAL mode never corrupts; a power cut may lose the last commits.
            await self._writer.execute("PRAGMA synchronous=NORMAL")
        async with self._write() as conn:
            await conn.execute("CREATE TABLE IF NOT EXISTS schema_version (version INTEGER)")
            row = await _one(conn, "SELECT version FROM schema_version")
            if row is None:
                await conn.execute("INSERT INTO schema_version VALUES (0)")
            current = 0 if row is None else int(row["version"])
            for index in pending(current, len(self.migrations)):
                for statement in self.migrations[index]:
                    await conn.execute(statement)
            await conn.execute("UPDATE schema_version SET version = ?", (len(self.migrations),))
        if self._reader is None:
            self._reader = self._writer if self._in_memory else await self._connect()
            if self._reader is not self._writer:
                await self._reader.execute("PRAGMA query_only=ON")

    async def schema_version(self) -> int:
        """The version the database is at."""
        async with self._read() as conn:
            row = await _one(conn, "SELECT version FROM schema_version")
        return 0 if row is None else int(row["version"])

    async def close(self) -> None:
        reader, writer, self._reader, self._writer = self._reader, self._writer, None, None
        if reader is not None and reader is not writer:
            await reader.close()
        if writer is not None:
            await writer.close()

    # --- transactions --------------------------------------------------------------

    @asynccontextmanager
    async def _write(self) -> AsyncIterator[aiosqlite.Connection]:
        async with self._write_lock:
            conn = self._need(self._writer)
            try:
                # Inside the try: if the task is cancelled while BEGIN is queued, BEGIN
                # still runs, and the ROLLBACK below is queued right behind it.
                await conn.execute("BEGIN IMMEDIATE")
                yield conn
            except BaseException:
                await conn.rollback()  # a no-op if no transaction is open
                raise
            await conn.commit()

    @asynccontextmanager
    async def _read(self) -> AsyncIterator[aiosqlite.Connection]:
        # One snapshot for multi-statement reads (a run and its steps).
        async with self._read_lock:
            conn = self._need(self._reader)
            try:
                await conn.execute("BEGIN")
                yield conn
            finally:
                await conn.rollback()

    @staticmethod
    def _need(conn: aiosqlite.Connection | None) -> aiosqlite.Connection:
        if conn is None:
            raise MemoryStoreError("the SQLite store is not set up (call setup() first)")
        return conn

    # --- threads and messages ------------------------------------------------------

    async def get_or_create_thread(
        self, thread_id: str, resource_id: str, metadata: Mapping[str, Any] | None = None
    ) -> Thread:
        """The thread, created at version 0 if new; WrongResource if it is another's."""
        existing = await self.get_thread(thread_id)  # most turns: no write lock needed
        if existing is None:
            now = self._clock()
            async with self._write() as conn:
                await conn.execute(
                    "INSERT INTO threads VALUES (?, ?, 0, ?, ?, ?) ON CONFLICT DO NOTHING",
                    (thread_id, resource_id, now, now, codec.dumps(metadata)),
                )
                existing = _thread(await _one(conn, _THREAD_BY_ID, (thread_id,)))
        if existing.resource_id != resource_id:
            raise WrongResource(thread_id)
        return existing

    async def get_thread(self, thread_id: str) -> Thread | None:
        async with self._read() as conn:
            row = await _one(conn, _THREAD_BY_ID, (thread_id,))
        return None if row is None else _thread(row)

    async def list_threads(
        self, resource_id: str, *, limit: int = 50, offset: int = 0
    ) -> list[Thread]:
        """The resource's threads, most recently updated first."""
        async with self._read() as conn:
            rows = await conn.execute_fetchall(
                "SELECT * FROM threads WHERE resource_id = ? "
                "ORDER BY updated_at DESC, id LIMIT ? OFFSET ?",
                (resource_id, limit, offset),
            )
        return [_thread(r) for r in rows]

    async def delete_thread(self, thread_id: str) -> bool:
        """Delete the thread, its messages and its working memory; False if absent."""
        async with self._write() as conn:
            return await _delete_threads(conn, [thread_id]) > 0

    async def messages(self, thread_id: str, *, last: int | None = None) -> list[Message]:
        """The thread's messages in order (none for an unknown thread); `last` keeps
        only the newest N."""
        if last is not None and last <= 0:
            return []
        async with self._read() as conn:
            rows = await conn.execute_fetchall(
                "SELECT body FROM (SELECT seq, body FROM messages WHERE thread_id = ? "
                "ORDER BY seq DESC LIMIT ?) ORDER BY seq",
                (thread_id, -1 if last is None else last),  # LIMIT -1: no limit
            )
        return [codec.decode_message(r["body"]) for r in rows]

    async def append(
        self, thread_id: str, messages: Sequence[Message], *, expected_version: int
    ) -> Thread:
        """Append and bump the version in one transaction, iff the version is still
        `expected_version`; else ThreadConflict and nothing is written."""
        bodies = [codec.encode_message(m).decode() for m in messages]  # refuse before locking
        async with self._write() as conn:
            row = await _one(conn, _THREAD_BY_ID, (thread_id,))
            if row is None:
                raise ThreadNotFound(thread_id)
            thread = _thread(row)
            if thread.version != expected_version:
                raise ThreadConflict(thread_id, expected_version, thread.version)
            top = await _one(
                conn, "SELECT MAX(seq) FROM messages WHERE thread_id = ?", (thread_id,)
            )
            first = 1 + (0 if top is None or top[0] is None else int(top[0]))
            await conn.executemany(
                "INSERT INTO messages VALUES (?, ?, ?)",
                [(thread_id, first + i, body) for i, body in enumerate(bodies)],
            )
            if self._fault is not None:
                await self._fault()
            now = self._clock()
            await conn.execute(
                "UPDATE threads SET version = version + 1, updated_at = ? WHERE id = ?",
                (now, thread_id),
            )
        return Thread(
            thread.id, thread.resource_id, thread.version + 1, thread.created_at, now,
            thread.metadata,
        )  # fmt: skip

    # --- leases ----------------------------------------------------------------------

    async def acquire_lease(self, thread_id: str, owner: str, ttl: float) -> bool:
        """Take (or renew) the lease if free, expired, or already `owner`'s."""
        now = self._clock()
        async with self._write() as conn:
            taken = await _one(
                conn,
                "INSERT INTO leases VALUES (?, ?, ?) ON CONFLICT (thread_id) DO UPDATE "
                "SET owner = excluded.owner, expires_at = excluded.expires_at "
                "WHERE leases.owner = excluded.owner OR leases.expires_at <= ? "
                "RETURNING owner",
                (thread_id, owner, now + ttl, now),
            )
        return taken is not None

    async def release_lease(self, thread_id: str, owner: str) -> None:
        """Release the lease if `owner` still holds it (never someone else's)."""
        async with self._write() as conn:
            await conn.execute(
                "DELETE FROM leases WHERE thread_id = ? AND owner = ?", (thread_id, owner)
            )

    # --- working memory --------------------------------------------------------------

    async def get_working_memory(self, scope: Scope, key: str) -> str | None:
        async with self._read() as conn:
            row = await _one(
                conn, "SELECT text FROM working_memory WHERE scope = ? AND key = ?", (scope, key)
            )
        return None if row is None else str(row["text"])

    async def set_working_memory(self, scope: Scope, key: str, text: str) -> None:
        async with self._write() as conn:
            await conn.execute(
                "INSERT INTO working_memory VALUES (?, ?, ?, ?) ON CONFLICT (scope, key) "
                "DO UPDATE SET text = excluded.text, updated_at = excluded.updated_at",
                (scope, key, text, self._clock()),
            )

    # --- runs --------------------------------------------------------------------------

    async def start_run(self, run: RunRecord) -> None:
        """Record the run (and any steps it carries); starting it again keeps the first
        record, so a resumed run does not lose the steps it already has."""
        async with self._write() as conn:
            await conn.execute(
                "INSERT INTO runs VALUES (?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING",
                codec.run_values(run),
            )
            await conn.executemany(_UPSERT_STEP, [codec.step_values(s) for s in run.steps])

    async def record_step(self, step: StepRecord) -> None:
        """Record a step; recording the same (run, index) again replaces it."""
        async with self._write() as conn:
            await conn.execute(_UPSERT_STEP, codec.step_values(step))

    async def finish_run(
        self, run_id: str, status: Literal["ok", "error"], error: str | None
    ) -> None:
        async with self._write() as conn:
            await conn.execute(
                "UPDATE runs SET status = ?, ended_at = ?, error = ? WHERE id = ?",
                (status, self._clock(), error, run_id),
            )

    async def get_run(self, run_id: str) -> RunRecord | None:
        async with self._read() as conn:
            r = await _one(conn, "SELECT * FROM runs WHERE id = ?", (run_id,))
            steps = await conn.execute_fetchall(
                'SELECT * FROM steps WHERE run_id = ? ORDER BY "index"', (run_id,)
            )
        return None if r is None else codec.run_from_row(r, steps)

    # --- retention ---------------------------------------------------------------------

    async def sweep(self, idle_for: float) -> int:
        """Delete threads not updated for `idle_for` seconds, except those a run holds
        a live lease on (a turn may start on an old thread); returns how many."""
        total = 0
        while True:
            now = self._clock()
            async with self._write() as conn:
                rows = await conn.execute_fetchall(
                    "SELECT id FROM threads WHERE updated_at < ? AND id NOT IN "
                    "(SELECT thread_id FROM leases WHERE expires_at > ?) LIMIT ?",
                    (now - idle_for, now, _SWEEP_BATCH),
                )
                ids = [str(r["id"]) for r in rows]
                total += await _delete_threads(conn, ids)
                # Leases left behind by crashed holders would otherwise pile up.
                await conn.execute("DELETE FROM leases WHERE expires_at <= ?", (now,))
            if len(ids) < _SWEEP_BATCH:
                return total


_THREAD_BY_ID = "SELECT * FROM threads WHERE id = ?"
_UPSERT_STEP = (
    "INSERT OR REPLACE INTO steps "
    '(run_id, "index", kind, name, input, output, status, started_at, ended_at) '
    "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)"
)


async def _one(
    conn: aiosqlite.Connection, sql: str, params: Sequence[Any] = ()
) -> sqlite3.Row | None:
    rows = await conn.execute_fetchall(sql, params)
    return next(iter(rows), None)


def _thread(row: sqlite3.Row | None) -> Thread:
    assert row is not None  # callers read it inside the transaction that wrote it
    return Thread(
        id=row["id"],
        resource_id=row["resource_id"],
        version=int(row["version"]),
        created_at=float(row["created_at"]),
        updated_at=float(row["updated_at"]),
        metadata=codec.loads(row["metadata"]),
    )


async def _delete_threads(conn: aiosqlite.Connection, ids: Iterable[str]) -> int:
    params = [(i,) for i in ids]
    if not params:
        return 0
    await conn.executemany("DELETE FROM messages WHERE thread_id = ?", params)
    await conn.executemany("DELETE FROM working_memory WHERE scope = 'thread' AND key = ?", params)
    cursor = await conn.executemany("DELETE FROM threads WHERE id = ?", params)
    return cursor.rowcount
