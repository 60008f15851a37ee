"""The SQLite store's schema and its operations, as plain synchronous functions.

Each function is one store operation over a `sqlite3.Connection`; `SqliteWorker` runs it
on the connection's thread inside the transaction (`write`: BEGIN IMMEDIATE … COMMIT,
ROLLBACK if the function raises; `read`: one snapshot). So nothing here begins, commits
or awaits anything, and a function that raises half-way has written nothing. Timestamps
come in as arguments, read from the store's clock on the event loop.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Callable, Sequence
from dataclasses import replace
from typing import Literal

from bastion.memory import codec
from bastion.memory._support import pending
from bastion.memory.base import (
    RunRecord,
    Scope,
    StepRecord,
    Thread,
    ThreadConflict,
    ThreadNotFound,
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
    # v2: the replica that holds a lease or started a run, so that it can let go of
    # them after a restart (`recover`). Rows from before read as NULL: nobody's.
    (
        "ALTER TABLE leases ADD COLUMN replica TEXT",
        "CREATE INDEX leases_by_replica ON leases (replica)",
        "ALTER TABLE runs ADD COLUMN replica TEXT",
        "CREATE INDEX runs_running_by_replica ON runs (replica) WHERE status = 'running'",
    ),
)

Conn = sqlite3.Connection

_THREAD_BY_ID = "SELECT * FROM threads WHERE id = ?"
_INSERT_RUN = (
    f"INSERT INTO runs ({', '.join(codec.RUN_COLUMNS)}) "
    f"VALUES ({', '.join('?' * len(codec.RUN_COLUMNS))}) ON CONFLICT DO NOTHING"
)
_UPSERT_STEP = (
    "INSERT OR REPLACE INTO steps "
    '(run_id, "index", kind, name, input, output, status, started_at, ended_at) '
    "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)"
)

# --- schema ------------------------------------------------------------------------------


def migrate(conn: Conn, migrations: Sequence[Sequence[str]]) -> None:
    """Bring the schema to `len(migrations)`; run inside the write transaction, so a
    second process migrating at the same time waits, then re-reads the version."""
    conn.execute("CREATE TABLE IF NOT EXISTS schema_version (version INTEGER)")
    row = conn.execute("SELECT version FROM schema_version").fetchone()
    if row is None:
        conn.execute("INSERT INTO schema_version VALUES (0)")
    current = 0 if row is None else int(row["version"])
    for index in pending(current, len(migrations)):
        for statement in migrations[index]:
            conn.execute(statement)
    conn.execute("UPDATE schema_version SET version = ?", (len(migrations),))


def schema_version(conn: Conn) -> int:
    row = conn.execute("SELECT version FROM schema_version").fetchone()
    return 0 if row is None else int(row["version"])


# --- threads and messages ------------------------------------------------------------------


def get_thread(conn: Conn, thread_id: str) -> Thread | None:
    row = conn.execute(_THREAD_BY_ID, (thread_id,)).fetchone()
    return None if row is None else codec.thread_from_row(row)


def create_thread(
    conn: Conn, thread_id: str, resource_id: str, metadata: str, now: float
) -> Thread:
    """The thread, inserted at version 0 unless someone created it first."""
    conn.execute(
        "INSERT INTO threads VALUES (?, ?, 0, ?, ?, ?) ON CONFLICT DO NOTHING",
        (thread_id, resource_id, now, now, metadata),
    )
    return codec.thread_from_row(conn.execute(_THREAD_BY_ID, (thread_id,)).fetchone())


def list_threads(conn: Conn, resource_id: str, limit: int, offset: int) -> list[Thread]:
    rows = conn.execute(
        "SELECT * FROM threads WHERE resource_id = ? ORDER BY updated_at DESC, id LIMIT ? OFFSET ?",
        (resource_id, limit, offset),
    )
    return [codec.thread_from_row(r) for r in rows]


def delete_threads(conn: Conn, ids: Sequence[str]) -> int:
    """Delete the threads, their messages and their working memory; how many were there."""
    params = [(i,) for i in ids]
    if not params:
        return 0
    conn.executemany("DELETE FROM messages WHERE thread_id = ?", params)
    conn.executemany("DELETE FROM working_memory WHERE scope = 'thread' AND key = ?", params)
    return conn.executemany("DELETE FROM threads WHERE id = ?", params).rowcount


def messages(conn: Conn, thread_id: str, last: int | None) -> list[Message]:
    rows = conn.execute(
        "SELECT body FROM (SELECT seq, body FROM messages WHERE thread_id = ? "
        "ORDER BY seq DESC LIMIT ?) ORDER BY seq",
        (thread_id, -1 if last is None else last),  # LIMIT -1: no limit
    )
    return [codec.decode_message(r["body"]) for r in rows]


def append(
    conn: Conn,
    thread_id: str,
    bodies: Sequence[str],
    expected_version: int,
    now: float,
    fault: Callable[[], None] | None = None,
) -> Thread:
    """Append the encoded messages and bump the version, iff the version is still
    `expected_version`; else ThreadConflict. `fault` is the test seam, called between
    the two writes."""
    thread = get_thread(conn, thread_id)
    if thread is None:
        raise ThreadNotFound(thread_id)
    if thread.version != expected_version:
        raise ThreadConflict(thread_id, expected_version, thread.version)
    (top,) = conn.execute(
        "SELECT MAX(seq) FROM messages WHERE thread_id = ?", (thread_id,)
    ).fetchone()
    first = 1 + (0 if top is None else int(top))
    conn.executemany(
        "INSERT INTO messages VALUES (?, ?, ?)",
        [(thread_id, first + i, body) for i, body in enumerate(bodies)],
    )
    if fault is not None:
        fault()
    conn.execute(
        "UPDATE threads SET version = version + 1, updated_at = ? WHERE id = ?", (now, thread_id)
    )
    return replace(thread, version=thread.version + 1, updated_at=now)


# --- leases ------------------------------------------------------------------------------


def acquire_lease(
    conn: Conn, thread_id: str, owner: str, replica: str, expires_at: float, now: float
) -> bool:
    taken = conn.execute(
        "INSERT INTO leases (thread_id, owner, expires_at, replica) VALUES (?, ?, ?, ?) "
        "ON CONFLICT (thread_id) DO UPDATE SET owner = excluded.owner, "
        "expires_at = excluded.expires_at, replica = excluded.replica "
        "WHERE leases.owner = excluded.owner OR leases.expires_at <= ? "
        "RETURNING owner",
        (thread_id, owner, expires_at, replica, now),
    ).fetchall()  # stepped to its end, so the statement is done before the COMMIT
    return bool(taken)


def release_lease(conn: Conn, thread_id: str, owner: str) -> None:
    conn.execute("DELETE FROM leases WHERE thread_id = ? AND owner = ?", (thread_id, owner))


# --- working memory ----------------------------------------------------------------------


def get_working_memory(conn: Conn, scope: Scope, key: str) -> str | None:
    row = conn.execute(
        "SELECT text FROM working_memory WHERE scope = ? AND key = ?", (scope, key)
    ).fetchone()
    return None if row is None else str(row["text"])


def set_working_memory(conn: Conn, scope: Scope, key: str, text: str, now: float) -> None:
    conn.execute(
        "INSERT INTO working_memory VALUES (?, ?, ?, ?) ON CONFLICT (scope, key) "
        "DO UPDATE SET text = excluded.text, updated_at = excluded.updated_at",
        (scope, key, text, now),
    )


# --- runs --------------------------------------------------------------------------------


def start_run(conn: Conn, run: RunRecord, replica: str) -> None:
    conn.execute(_INSERT_RUN, codec.run_values(run, replica))
    conn.executemany(_UPSERT_STEP, [codec.step_values(s) for s in run.steps])


def record_step(conn: Conn, step: StepRecord) -> None:
    conn.execute(_UPSERT_STEP, codec.step_values(step))


def finish_run(
    conn: Conn, run_id: str, status: Literal["ok", "error"], error: str | None, now: float
) -> None:
    conn.execute(
        "UPDATE runs SET status = ?, ended_at = ?, error = ? WHERE id = ?",
        (status, now, error, run_id),
    )


def get_run(conn: Conn, run_id: str) -> RunRecord | None:
    row = conn.execute("SELECT * FROM runs WHERE id = ?", (run_id,)).fetchone()
    if row is None:
        return None
    steps = conn.execute('SELECT * FROM steps WHERE run_id = ? ORDER BY "index"', (run_id,))
    return codec.run_from_row(row, steps)


def recover(
    conn: Conn, replica: str, reason: str, now: float, keep: Sequence[str] = ()
) -> tuple[int, int]:
    """Release `replica`'s leases and finish its running runs with `reason`, but for
    the runs in `keep`; (leases released, runs finished)."""
    leases = conn.execute("DELETE FROM leases WHERE replica = ?", (replica,)).rowcount
    runs = conn.execute(
        "UPDATE runs SET status = 'error', ended_at = ?, error = ? "
        "WHERE replica = ? AND status = 'running' "
        "AND id NOT IN (SELECT value FROM json_each(?))",
        (now, reason, replica, json.dumps(list(keep))),
    ).rowcount
    return leases, runs


# --- retention ---------------------------------------------------------------------------


def sweep_batch(conn: Conn, idle_before: float, now: float, batch: int) -> tuple[int, int]:
    """Delete up to `batch` threads not updated since `idle_before` and not under a live
    lease, and every expired lease; (threads found, threads deleted)."""
    rows = conn.execute(
        "SELECT id FROM threads WHERE updated_at < ? AND id NOT IN "
        "(SELECT thread_id FROM leases WHERE expires_at > ?) LIMIT ?",
        (idle_before, now, batch),
    ).fetchall()
    ids = [str(r["id"]) for r in rows]
    deleted = delete_threads(conn, ids)
    # Leases left behind by crashed holders would otherwise pile up.
    conn.execute("DELETE FROM leases WHERE expires_at <= ?", (now,))
    return len(ids), deleted
