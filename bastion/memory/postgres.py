"""Memory in PostgreSQL, for many replicas sharing one database (asyncpg pool).

- A turn's append locks the thread row (`SELECT … FOR UPDATE`), checks the version,
  inserts the messages and bumps the version in one transaction: two replicas appending
  with the same expected version serialise on the row lock, and the second one reads
  the bumped version and gets ThreadConflict.
- Leases are timed on the database's clock (`clock_timestamp()`), not the replicas':
  they arbitrate between hosts, whose clocks may disagree. Thread timestamps use the
  injected wall clock, like the other stores, so that tests can age a thread.
- Migrations run under a transaction-scoped advisory lock, so replicas starting together
  migrate once. `schema=` keeps all tables in one PostgreSQL schema (created if needed).
"""

from __future__ import annotations

import re
import time
from collections.abc import Collection, Mapping, Sequence
from typing import Any, Literal

import asyncpg

from bastion.memory import codec
from bastion.memory._support import FaultHook, SetupOnEnter, WallClock, new_replica_id, pending
from bastion.memory.base import (
    INTERRUPTED,
    MemoryStoreError,
    Recovered,
    RunRecord,
    Scope,
    StepRecord,
    Thread,
    ThreadConflict,
    ThreadNotFound,
    WrongResource,
)
from bastion.types import Message

# Migration i takes the schema from version i to i + 1. Append, never edit.
MIGRATIONS: tuple[tuple[str, ...], ...] = (
    (
        "CREATE TABLE threads (id text PRIMARY KEY, resource_id text NOT NULL, "
        "version bigint NOT NULL, created_at double precision NOT NULL, "
        "updated_at double precision NOT NULL, metadata jsonb NOT NULL)",
        "CREATE INDEX threads_by_resource ON threads (resource_id, updated_at DESC)",
        "CREATE INDEX threads_by_updated ON threads (updated_at)",
        "CREATE TABLE messages (thread_id text NOT NULL, seq integer NOT NULL, "
        "body jsonb NOT NULL, PRIMARY KEY (thread_id, seq))",
        "CREATE TABLE leases (thread_id text PRIMARY KEY, owner text NOT NULL, "
        "expires_at timestamptz NOT NULL)",
        "CREATE TABLE working_memory (scope text NOT NULL, key text NOT NULL, "
        "text text NOT NULL, updated_at double precision NOT NULL, PRIMARY KEY (scope, key))",
        "CREATE TABLE runs (id text PRIMARY KEY, agent text NOT NULL, thread_id text, "
        "resource_id text, status text NOT NULL, started_at double precision NOT NULL, "
        "ended_at double precision, error text)",
        'CREATE TABLE steps (run_id text NOT NULL, "index" integer NOT NULL, '
        "kind text NOT NULL, name text NOT NULL, input jsonb NOT NULL, output jsonb NOT NULL, "
        "status text NOT NULL, started_at double precision NOT NULL, "
        'ended_at double precision NOT NULL, PRIMARY KEY (run_id, "index"))',
    ),
    # v2: the replica that holds a lease or started a run, so that it can let go of
    # them after a restart (`recover`). Rows from before read as NULL: nobody's. The
    # columns come last, so a replica still on v1 code (positional INSERTs) keeps working.
    (
        "ALTER TABLE leases ADD COLUMN replica text",
        "CREATE INDEX leases_by_replica ON leases (replica)",
        "ALTER TABLE runs ADD COLUMN replica text",
        "CREATE INDEX runs_running_by_replica ON runs (replica) WHERE status = 'running'",
    ),
)

_SCHEMA_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,62}")
_SWEEP_BATCH = 500  # threads per sweep statement: row locks are never held long


class PostgresStore(SetupOnEnter):
    """A `MemoryStore` in PostgreSQL. Call `setup()` first, or use `async with`.
    `replica_id` names the process for `recover` (a fresh random one if not given);
    every replica sharing the database needs its own."""

    migrations: tuple[tuple[str, ...], ...] = MIGRATIONS

    def __init__(
        self,
        dsn: str,
        *,
        schema: str | None = None,
        pool_size: int = 10,
        command_timeout: float = 10.0,
        replica_id: str | None = None,
        clock: WallClock = time.time,
        fault_after_messages: FaultHook | None = None,
    ) -> None:
        self.replica_id = replica_id or new_replica_id()
        if schema is not None and not _SCHEMA_NAME.fullmatch(schema):
            raise ValueError(f"not a plain PostgreSQL identifier: {schema!r}")
        self._dsn = dsn
        self.schema = schema
        self._pool_size = pool_size
        self._command_timeout = command_timeout  # bounded: a hung query is an error
        self._clock = clock
        self._fault = fault_after_messages
        self._pool: Any = None  # asyncpg.Pool (asyncpg ships no type information)

    async def setup(self) -> None:
        """Open the pool and bring the schema to the latest version; idempotent."""
        if self._pool is None:
            settings = {"search_path": self.schema} if self.schema else None
            self._pool = await asyncpg.create_pool(
                self._dsn,
                min_size=1,
                max_size=self._pool_size,
                command_timeout=self._command_timeout,
                server_settings=settings,
            )
        async with self._pool.acquire() as conn, conn.transaction():
            await conn.execute("SELECT pg_advisory_xact_lock(hashtext('bastion.memory.schema'))")
            if self.schema:
                await conn.execute(f'CREATE SCHEMA IF NOT EXISTS "{self.schema}"')
            await conn.execute("CREATE TABLE IF NOT EXISTS schema_version (version integer)")
            current = await conn.fetchval("SELECT version FROM schema_version")
            if current is None:
                await conn.execute("INSERT INTO schema_version VALUES (0)")
            for index in pending(current or 0, len(self.migrations)):
                for statement in self.migrations[index]:
                    await conn.execute(statement)
            await conn.execute("UPDATE schema_version SET version = $1", len(self.migrations))

    async def schema_version(self) -> int:
        """The version the database is at."""
        return int(await self._db.fetchval("SELECT version FROM schema_version") or 0)

    async def close(self) -> None:
        pool, self._pool = self._pool, None
        if pool is not None:
            await pool.close()

    @property
    def _db(self) -> Any:
        if self._pool is None:
            raise MemoryStoreError("the PostgreSQL store is not set up (call setup() first)")
        return self._pool

    # --- threads and messages ------------------------------------------------------

    async def get_or_create_thread(
        self, thread_id: str, resource_id: str, metadata: Mapping[str, Any] | None = None
    ) -> Thread:
        """The thread, created at version 0 if new; WrongResource if it is another's."""
        row = await self._db.fetchrow(_THREAD_BY_ID, thread_id)
        if row is None:
            now = self._clock()
            row = await self._db.fetchrow(
                "INSERT INTO threads VALUES ($1, $2, 0, $3, $3, $4) "
                "ON CONFLICT (id) DO NOTHING RETURNING *",
                thread_id, resource_id, now, codec.dumps(metadata),
            )  # fmt: skip
            # Lost a race with another creator: read theirs (a new statement sees it).
            row = row or await self._db.fetchrow(_THREAD_BY_ID, thread_id)
        if row["resource_id"] != resource_id:
            raise WrongResource(thread_id)
        return codec.thread_from_row(row)

    async def get_thread(self, thread_id: str) -> Thread | None:
        row = await self._db.fetchrow(_THREAD_BY_ID, thread_id)
        return None if row is None else codec.thread_from_row(row)

    async def list_threads(
        self, resource_id: str, *, limit: int = 50, offset: int = 0
    ) -> list[Thread]:
        """The resource's threads, most recently updated first."""
        rows = await self._db.fetch(
            "SELECT * FROM threads WHERE resource_id = $1 "
            "ORDER BY updated_at DESC, id LIMIT $2 OFFSET $3",
            resource_id, limit, offset,
        )  # fmt: skip
        return [codec.thread_from_row(r) for r in rows]

    async def delete_thread(self, thread_id: str) -> bool:
        """Delete the thread, its messages and its working memory; False if absent."""
        gone = await self._db.fetchval(
            _DELETE_THREADS.format(select="SELECT id FROM threads WHERE id = $1"), thread_id
        )
        return bool(gone)

    async def messages(self, thread_id: str, *, last: int | None = None) -> list[Message]:
        """The thread's messages in order (none for an unknown thread); `last` keeps
        only the newest N."""
        if last is not None and last <= 0:
            return []
        rows = await self._db.fetch(
            "SELECT body FROM (SELECT seq, body FROM messages WHERE thread_id = $1 "
            "ORDER BY seq DESC LIMIT $2) m ORDER BY seq",
            thread_id, last,  # LIMIT NULL: no limit
        )  # fmt: skip
        return [codec.decode_message(r["body"]) for r in rows]

    async def append(
        self, thread_id: str, messages: Sequence[Message], *, expected_version: int
    ) -> Thread:
        """Append and bump the version in one transaction, iff the version is still
        `expected_version`; else ThreadConflict and nothing is written."""
        bodies = [codec.encode_message(m).decode() for m in messages]  # refuse before locking
        async with self._db.acquire() as conn, conn.transaction():
            row = await conn.fetchrow(_THREAD_BY_ID + " FOR UPDATE", thread_id)
            if row is None:
                raise ThreadNotFound(thread_id)
            if row["version"] != expected_version:
                raise ThreadConflict(thread_id, expected_version, row["version"])
            await conn.execute(
                "INSERT INTO messages SELECT $1, top.n + u.ord, u.body::jsonb "
                "FROM (SELECT COALESCE(MAX(seq), 0) AS n FROM messages WHERE thread_id = $1) "
                "top, unnest($2::text[]) WITH ORDINALITY AS u(body, ord)",
                thread_id, bodies,
            )  # fmt: skip
            if self._fault is not None:
                await self._fault()
            row = await conn.fetchrow(
                "UPDATE threads SET version = version + 1, updated_at = $2 WHERE id = $1 "
                "RETURNING *",
                thread_id, self._clock(),
            )  # fmt: skip
        return codec.thread_from_row(row)

    # --- leases ----------------------------------------------------------------------

    async def acquire_lease(self, thread_id: str, owner: str, ttl: float) -> bool:
        """Take (or renew) the lease if free, expired, or already `owner`'s."""
        taken = await self._db.fetchval(
            "INSERT INTO leases (thread_id, owner, expires_at, replica) "
            "VALUES ($1, $2, clock_timestamp() + make_interval(secs => $3), $4) "
            "ON CONFLICT (thread_id) DO UPDATE SET owner = excluded.owner, "
            "expires_at = excluded.expires_at, replica = excluded.replica "
            "WHERE leases.owner = excluded.owner OR leases.expires_at <= clock_timestamp() "
            "RETURNING true",
            thread_id, owner, float(ttl), self.replica_id,
        )  # fmt: skip
        return bool(taken)

    async def release_lease(self, thread_id: str, owner: str) -> None:
        """Release the lease if `owner` still holds it (never someone else's)."""
        await self._db.execute(
            "DELETE FROM leases WHERE thread_id = $1 AND owner = $2", thread_id, owner
        )

    # --- working memory --------------------------------------------------------------

    async def get_working_memory(self, scope: Scope, key: str) -> str | None:
        text = await self._db.fetchval(
            "SELECT text FROM working_memory WHERE scope = $1 AND key = $2", scope, key
        )
        return None if text is None else str(text)

    async def set_working_memory(self, scope: Scope, key: str, text: str) -> None:
        await self._db.execute(
            "INSERT INTO working_memory VALUES ($1, $2, $3, $4) ON CONFLICT (scope, key) "
            "DO UPDATE SET text = excluded.text, updated_at = excluded.updated_at",
            scope, key, text, self._clock(),
        )  # fmt: skip

    # --- runs --------------------------------------------------------------------------

    async def start_run(self, run: RunRecord) -> None:
        """Record the run (and any steps it carries); starting it again keeps the first
        record, so a resumed run does not lose the steps it already has."""
        async with self._db.acquire() as conn, conn.transaction():
            await conn.execute(_INSERT_RUN, *codec.run_values(run, self.replica_id))
            await conn.executemany(_UPSERT_STEP, [codec.step_values(s) for s in run.steps])

    async def record_step(self, step: StepRecord) -> None:
        """Record a step; recording the same (run, index) again replaces it."""
        await self._db.execute(_UPSERT_STEP, *codec.step_values(step))

    async def finish_run(
        self, run_id: str, status: Literal["ok", "error"], error: str | None
    ) -> None:
        await self._db.execute(
            "UPDATE runs SET status = $2, ended_at = $3, error = $4 WHERE id = $1",
            run_id, status, self._clock(), error,
        )  # fmt: skip

    async def get_run(self, run_id: str) -> RunRecord | None:
        # One snapshot for the run and its steps.
        async with (
            self._db.acquire() as conn,
            conn.transaction(isolation="repeatable_read", readonly=True),
        ):
            run = await conn.fetchrow("SELECT * FROM runs WHERE id = $1", run_id)
            steps = await conn.fetch(
                'SELECT * FROM steps WHERE run_id = $1 ORDER BY "index"', run_id
            )
        return None if run is None else codec.run_from_row(run, steps)

    async def recover(self, keep: Collection[str] = ()) -> Recovered:
        """Release this replica's leases and finish its running runs as interrupted
        (but for those in `keep`), in one transaction."""
        async with self._db.acquire() as conn, conn.transaction():
            leases = await conn.fetchval(
                "WITH gone AS (DELETE FROM leases WHERE replica = $1 RETURNING 1) "
                "SELECT count(*) FROM gone",
                self.replica_id,
            )
            runs = await conn.fetchval(
                "WITH done AS (UPDATE runs SET status = 'error', ended_at = $2, error = $3 "
                "WHERE replica = $1 AND status = 'running' AND NOT (id = ANY($4::text[])) "
                "RETURNING 1) SELECT count(*) FROM done",
                self.replica_id, self._clock(), INTERRUPTED, list(keep),
            )  # fmt: skip
        return Recovered(int(leases), int(runs))

    # --- retention ---------------------------------------------------------------------

    async def sweep(self, idle_for: float) -> int:
        """Delete threads not updated for `idle_for` seconds, except those a run holds
        a live lease on or is appending to right now; returns how many."""
        total = 0
        while True:
            gone: int
            # SKIP LOCKED: a thread being appended to is not idle; leave it alone.
            gone = await self._db.fetchval(
                _DELETE_THREADS.format(
                    select="SELECT id FROM threads t WHERE updated_at < $1 AND NOT EXISTS "
                    "(SELECT 1 FROM leases l WHERE l.thread_id = t.id "
                    "AND l.expires_at > clock_timestamp()) LIMIT $2 FOR UPDATE SKIP LOCKED"
                ),
                self._clock() - idle_for, _SWEEP_BATCH,
            )  # fmt: skip
            total += gone
            if gone < _SWEEP_BATCH:
                # Leases left behind by crashed holders would otherwise pile up.
                await self._db.execute("DELETE FROM leases WHERE expires_at <= clock_timestamp()")
                return total


_THREAD_BY_ID = "SELECT * FROM threads WHERE id = $1"
# One statement, so the thread, its messages and its working memory go together.
_DELETE_THREADS = (
    "WITH gone AS (DELETE FROM threads WHERE id IN ({select}) RETURNING id), "
    "m AS (DELETE FROM messages WHERE thread_id IN (SELECT id FROM gone)), "
    "w AS (DELETE FROM working_memory WHERE scope = 'thread' AND key IN (SELECT id FROM gone)) "
    "SELECT count(*) FROM gone"
)
_INSERT_RUN = (
    f"INSERT INTO runs ({', '.join(codec.RUN_COLUMNS)}) "
    f"VALUES ({', '.join(f'${i + 1}' for i in range(len(codec.RUN_COLUMNS)))}) "
    "ON CONFLICT (id) DO NOTHING"
)
_UPSERT_STEP = (
    'INSERT INTO steps VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) ON CONFLICT (run_id, "index") '
    "DO UPDATE SET kind = excluded.kind, name = excluded.name, input = excluded.input, "
    "output = excluded.output, status = excluded.status, started_at = excluded.started_at, "
    "ended_at = excluded.ended_at"
)
