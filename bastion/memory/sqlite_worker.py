"""One SQLite connection on one thread of its own: a whole store operation, transaction
included, is one plain function run there — one hop from the event loop per operation.

Why not aiosqlite: it sends every statement, fetch, BEGIN and COMMIT to its thread as a
separate call, each an await and a thread hop (~37 per store operation, ~2 ms per agent
turn), and its only way to run a function on that thread is private
(`Connection._execute`). Owning the thread takes a few lines of stdlib instead: a
one-worker `ThreadPoolExecutor` runs what it is given in submission order, so
operations never interleave on the connection, and no lock is needed to keep them apart.

The connection is opened on the worker thread and keeps sqlite3's `check_same_thread`
guard: anything that touched it from another thread would fail loudly, not race.

Cancellation: an operation whose task is cancelled before the thread picks it up never
starts (nothing is written); one the thread has picked up runs to its COMMIT or ROLLBACK
whatever happens to the task. No transaction is ever left open or half-done.
"""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from functools import partial
from typing import Concatenate, ParamSpec, Self, TypeVar

P = ParamSpec("P")
T = TypeVar("T")

Op = Callable[Concatenate[sqlite3.Connection, P], T]
"""A store operation: plain synchronous code over the connection, run on its thread."""

_How = Callable[[sqlite3.Connection, Callable[[], T]], T]
"""How an operation's body runs on the thread: in a write or read transaction, or bare."""


class SqliteWorker:
    """A SQLite connection and the one thread that uses it. Open with `await
    SqliteWorker.open(path, ...)`; run operations with `write`, `read` or `call`."""

    def __init__(self, conn: sqlite3.Connection, executor: ThreadPoolExecutor) -> None:
        self._conn = conn
        self._executor = executor
        self._closed = False

    @classmethod
    async def open(cls, path: str, *, busy_timeout: float, pragmas: Sequence[str] = ()) -> Self:
        """Start the thread and open the connection on it, running `pragmas` first."""
        executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="bastion-sqlite")
        loop = asyncio.get_running_loop()
        try:
            conn = await loop.run_in_executor(executor, _connect, path, busy_timeout, pragmas)
        except BaseException:
            executor.shutdown(wait=False)
            raise
        return cls(conn, executor)

    async def write(self, op: Op[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
        """Run `op` in a `BEGIN IMMEDIATE` transaction: committed if it returns, rolled
        back if it raises. The write lock is taken up front, so a read-then-write
        operation never meets SQLITE_BUSY half-way (other processes wait `busy_timeout`)."""
        return await self._run(_write, partial(op, self._conn, *args, **kwargs))

    async def read(self, op: Op[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
        """Run `op` in a read transaction: one snapshot for all its statements."""
        return await self._run(_read, partial(op, self._conn, *args, **kwargs))

    async def call(self, op: Op[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
        """Run `op` on the connection's thread outside any transaction (for PRAGMAs)."""
        return await self._run(_plain, partial(op, self._conn, *args, **kwargs))

    async def close(self) -> None:
        """Close the connection after every operation already queued, then the thread;
        idempotent."""
        if self._closed:
            return
        self._closed = True
        try:
            await self._run(_plain, self._conn.close)
        finally:
            self._executor.shutdown(wait=False)

    async def _run(self, how: _How[T], body: Callable[[], T]) -> T:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, how, self._conn, body)


def _connect(path: str, busy_timeout: float, pragmas: Sequence[str]) -> sqlite3.Connection:
    # isolation_level=None: Python's sqlite3 must not open transactions behind our back;
    # every transaction here starts with an explicit BEGIN.
    conn = sqlite3.connect(path, timeout=busy_timeout, isolation_level=None)
    try:
        conn.row_factory = sqlite3.Row
        for pragma in pragmas:
            conn.execute(pragma)
    except BaseException:
        conn.close()
        raise
    return conn


def _write(conn: sqlite3.Connection, body: Callable[[], T]) -> T:
    conn.execute("BEGIN IMMEDIATE")
    try:
        result = body()
        conn.commit()
    except BaseException:
        conn.rollback()  # also after a failed COMMIT, which leaves the transaction open
        raise
    return result


def _read(conn: sqlite3.Connection, body: Callable[[], T]) -> T:
    conn.execute("BEGIN")
    try:
        return body()
    finally:
        conn.rollback()


def _plain(conn: sqlite3.Connection, body: Callable[[], T]) -> T:
    return body()
