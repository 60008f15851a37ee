"""The embedded default store: one SQLite file, no server.

- WAL mode, so readers never wait for the writer and a crash mid-transaction leaves
  only frames past the last commit, which the next opener ignores.
- One writer connection on a thread of its own (`SqliteWorker`). Each store operation is
  one synchronous function run there, transaction and all: `BEGIN IMMEDIATE`, its
  statements, `COMMIT` — or `ROLLBACK` if anything raised. One thread runs them one at a
  time, in order, so transactions never interleave; the write lock is taken up front, so
  two turns can never both read version N and then both try to write (the classic
  SQLITE_BUSY upgrade deadlock). Other processes on the same file wait up to
  `busy_timeout` for the lock.
- One read-only connection, on its own thread, for reads (a `:memory:` database is
  private to its connection, so there the writer reads too).

The statements live in `sqlite_ops`, the thread in `sqlite_worker` (why it is ours and
not aiosqlite's is told there); this module is the async `MemoryStore` over them.
"""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Callable, Collection, Mapping, Sequence
from typing import Any, Literal

from bastion.memory import codec
from bastion.memory import sqlite_ops as ops
from bastion.memory._support import FaultHook, SetupOnEnter, WallClock, new_replica_id
from bastion.memory.base import (
    INTERRUPTED,
    MemoryStoreError,
    Recovered,
    RunRecord,
    Scope,
    StepRecord,
    Thread,
    WrongResource,
)
from bastion.memory.sqlite_ops import MIGRATIONS
from bastion.memory.sqlite_worker import SqliteWorker
from bastion.types import Message

_SWEEP_BATCH = 500  # threads per sweep transaction: the writer lock is never held long


class SqliteStore(SetupOnEnter):
    """A `MemoryStore` in one SQLite file (or `":memory:"`). Call `setup()` first, or
    use `async with SqliteStore(path) as store:`. `replica_id` names the process for
    `recover` (a fresh random one if not given: nothing to recover)."""

    migrations: tuple[tuple[str, ...], ...] = MIGRATIONS

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        busy_timeout: float = 5.0,
        replica_id: str | None = None,
        clock: WallClock = time.time,
        fault_after_messages: FaultHook | None = None,
    ) -> None:
        self.path = os.fspath(path)
        self.replica_id = replica_id or new_replica_id()
        self._busy_timeout = busy_timeout
        self._clock = clock
        self._fault = fault_after_messages
        self._writer: SqliteWorker | None = None
        self._reader: SqliteWorker | None = None
        self._in_memory = self.path == ":memory:" or self.path.startswith("file::memory:")

    # --- lifecycle -----------------------------------------------------------------

    async def setup(self) -> None:
        """Open the connections and bring the schema to the latest version; idempotent,
        and safe against another process doing the same (the migration runs under the
        write lock and re-reads the version inside it)."""
        if self._writer is None:
            self._writer = await SqliteWorker.open(
                self.path,
                busy_timeout=self._busy_timeout,
                # NORMAL in WAL mode never corrupts; a power cut may lose the last commits.
                pragmas=("PRAGMA journal_mode=WAL", "PRAGMA synchronous=NORMAL"),
            )
        await self._writer.write(ops.migrate, self.migrations)
        if self._reader is None:
            self._reader = (
                self._writer
                if self._in_memory
                else await SqliteWorker.open(
                    self.path, busy_timeout=self._busy_timeout, pragmas=("PRAGMA query_only=ON",)
                )
            )

    async def schema_version(self) -> int:
        """The version the database is at."""
        return await self._read().read(ops.schema_version)

    async def close(self) -> None:
        reader, writer, self._reader, self._writer = self._reader, self._writer, None, None
        if reader is not None and reader is not writer:
            await reader.close()
        if writer is not None:
            await writer.close()

    def _write(self) -> SqliteWorker:
        return _need(self._writer)

    def _read(self) -> SqliteWorker:
        return _need(self._reader)

    # --- threads and messages ------------------------------------------------------

    async def get_or_create_thread(
        self, thread_id: str, resource_id: str, metadata: Mapping[str, Any] | None = None
    ) -> Thread:
        """The thread, created at version 0 if new; WrongResource if it is another's."""
        existing = await self.get_thread(thread_id)  # most turns: no write lock needed
        if existing is None:
            existing = await self._write().write(
                ops.create_thread, thread_id, resource_id, codec.dumps(metadata), self._clock()
            )
        if existing.resource_id != resource_id:
            raise WrongResource(thread_id)
        return existing

    async def get_thread(self, thread_id: str) -> Thread | None:
        return await self._read().read(ops.get_thread, thread_id)

    async def list_threads(
        self, resource_id: str, *, limit: int = 50, offset: int = 0
    ) -> list[Thread]:
        """The resource's threads, most recently updated first."""
        return await self._read().read(ops.list_threads, resource_id, limit, offset)

    async def delete_thread(self, thread_id: str) -> bool:
        """Delete the thread, its messages and its working memory; False if absent."""
        return await self._write().write(ops.delete_threads, [thread_id]) > 0

    async def messages(self, thread_id: str, *, last: int | None = None) -> list[Message]:
        """The thread's messages in order (none for an unknown thread); `last` keeps
        only the newest N."""
        if last is not None and last <= 0:
            return []
        return await self._read().read(ops.messages, thread_id, last)

    async def append(
        self, thread_id: str, messages: Sequence[Message], *, expected_version: int
    ) -> Thread:
        """Append and bump the version in one transaction, iff the version is still
        `expected_version`; else ThreadConflict and nothing is written."""
        bodies = [codec.encode_message(m).decode() for m in messages]  # refuse before locking
        fault = None if self._fault is None else _on_loop(self._fault)
        return await self._write().write(
            ops.append, thread_id, bodies, expected_version, self._clock(), fault
        )

    # --- leases ----------------------------------------------------------------------

    async def acquire_lease(self, thread_id: str, owner: str, ttl: float) -> bool:
        """Take (or renew) the lease if free, expired, or already `owner`'s."""
        now = self._clock()
        return await self._write().write(
            ops.acquire_lease, thread_id, owner, self.replica_id, now + ttl, now
        )

    async def release_lease(self, thread_id: str, owner: str) -> None:
        """Release the lease if `owner` still holds it (never someone else's)."""
        await self._write().write(ops.release_lease, thread_id, owner)

    # --- working memory --------------------------------------------------------------

    async def get_working_memory(self, scope: Scope, key: str) -> str | None:
        return await self._read().read(ops.get_working_memory, scope, key)

    async def set_working_memory(self, scope: Scope, key: str, text: str) -> None:
        await self._write().write(ops.set_working_memory, scope, key, text, self._clock())

    # --- runs --------------------------------------------------------------------------

    async def start_run(self, run: RunRecord) -> None:
        """Record the run (and any steps it carries); starting it again keeps the first
        record, so a resumed run does not lose the steps it already has."""
        await self._write().write(ops.start_run, run, self.replica_id)

    async def record_step(self, step: StepRecord) -> None:
        """Record a step; recording the same (run, index) again replaces it."""
        await self._write().write(ops.record_step, step)

    async def finish_run(
        self, run_id: str, status: Literal["ok", "error"], error: str | None
    ) -> None:
        await self._write().write(ops.finish_run, run_id, status, error, self._clock())

    async def get_run(self, run_id: str) -> RunRecord | None:
        return await self._read().read(ops.get_run, run_id)

    async def recover(self, keep: Collection[str] = ()) -> Recovered:
        """Release this replica's leases and finish its running runs as interrupted,
        but for those in `keep`."""
        leases, runs = await self._write().write(
            ops.recover, self.replica_id, INTERRUPTED, self._clock(), tuple(keep)
        )
        return Recovered(leases, runs)

    # --- retention ---------------------------------------------------------------------

    async def sweep(self, idle_for: float) -> int:
        """Delete threads not updated for `idle_for` seconds, except those a run holds
        a live lease on (a turn may start on an old thread); returns how many."""
        total = 0
        while True:
            now = self._clock()
            found, deleted = await self._write().write(
                ops.sweep_batch, now - idle_for, now, _SWEEP_BATCH
            )
            total += deleted
            if found < _SWEEP_BATCH:
                return total


def _need(worker: SqliteWorker | None) -> SqliteWorker:
    if worker is None:
        raise MemoryStoreError("the SQLite store is not set up (call setup() first)")
    return worker


def _on_loop(hook: FaultHook) -> Callable[[], None]:
    """The async test seam as a plain call for the worker thread: the hook runs on the
    event loop while the worker, its transaction open, waits for it."""
    loop = asyncio.get_running_loop()

    async def run() -> None:
        await hook()

    return lambda: asyncio.run_coroutine_threadsafe(run(), loop).result()
