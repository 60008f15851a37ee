"""Memory in Redis, for replicas that already share a Redis (redis.asyncio).

Every change that touches more than one key is one Lua script, which Redis runs with
nothing interleaved. Redis does not roll back a script that fails half-way, so each
script checks everything that could fail (the version, every message) before its first
write; after that only writes remain. A client that disconnects mid-call does not stop
a script either: it runs whole or, if it never arrived, not at all.

Leases are `SET NX PX` on the server's clock (a crashed holder's lease simply expires);
taking, renewing and releasing are Lua scripts that check the owner first, so a holder
whose lease expired can never release or extend the next holder's. Each replica keeps
the leases it took in `holders:{replica}` and its runs still running in
`running:{replica}`, so that after a restart it can let go of exactly those (`recover`).

Keys, under `prefix`: `thread:{id}` (hash: resource r, version v, created c, updated
u, metadata m), `msgs:{id}` (list), `lease:{id}` (the owner), `holders:{replica}` (hash
thread id → owner), `res:{resource}` and `idle` (sorted sets of thread ids by update
time), `wm:{scope}:{key}`, `run:{id}` (hash, with the `replica` that started it),
`running:{replica}` (set of run ids), `steps:{id}` (hash index → JSON),
`schema_version`. One Redis (or primary), not Redis Cluster: the scripts touch a
thread's keys and the shared indexes together. The replica keys came after layout 1
without changing it: a replica on older code ignores them, and `recover` checks every
owner before it deletes.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Collection, Mapping, Sequence
from typing import Any, Literal

import orjson
import redis.asyncio as aioredis
from redis.commands.core import AsyncScript

from bastion.memory import codec
from bastion.memory._support import SetupOnEnter, WallClock, new_replica_id, pending
from bastion.memory.base import (
    INTERRUPTED,
    CorruptRecord,
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
from bastion.memory.redis_scripts import SCRIPTS
from bastion.types import Message

RedisMigration = Callable[["aioredis.Redis", str], Awaitable[None]]


async def _layout_v1(client: aioredis.Redis, prefix: str) -> None:
    """Version 1 is the layout above; keys are created as they are first written."""


# Migration i takes the data from version i to i + 1. Append, never edit; each must be
# idempotent (two replicas starting at once may both run it).
MIGRATIONS: tuple[RedisMigration, ...] = (_layout_v1,)

_SWEEP_BATCH = 200  # threads per script call: Redis serves no one else while it runs


class RedisStore(SetupOnEnter):
    """A `MemoryStore` in Redis. Call `setup()` first, or use `async with`.
    `replica_id` names the process for `recover` (a fresh random one if not given);
    every replica sharing the Redis needs its own."""

    migrations: tuple[RedisMigration, ...] = MIGRATIONS

    def __init__(
        self,
        url: str,
        *,
        prefix: str = "bastion:memory:",
        socket_timeout: float = 10.0,
        replica_id: str | None = None,
        clock: WallClock = time.time,
    ) -> None:
        self.replica_id = replica_id or new_replica_id()
        self._url = url
        self.prefix = prefix
        self._socket_timeout = socket_timeout  # bounded: a silent Redis is an error
        self._clock = clock
        self._client: aioredis.Redis | None = None
        self._scripts: dict[str, AsyncScript] = {}

    async def setup(self) -> None:
        """Connect and bring the data to the latest layout version; idempotent."""
        if self._client is None:
            self._client = aioredis.Redis.from_url(
                self._url, socket_timeout=self._socket_timeout, decode_responses=False
            )
            c = self._client
            self._scripts = {name: c.register_script(body) for name, body in SCRIPTS.items()}
        key = self.prefix + "schema_version"
        current = int(await self._db.get(key) or 0)
        for index in pending(current, len(self.migrations)):
            await self.migrations[index](self._db, self.prefix)
            await self._db.set(key, index + 1)

    async def schema_version(self) -> int:
        """The version the data is at."""
        return int(await self._db.get(self.prefix + "schema_version") or 0)

    async def close(self) -> None:
        client, self._client = self._client, None
        if client is not None:
            await client.aclose()

    @property
    def _db(self) -> aioredis.Redis:
        if self._client is None:
            raise MemoryStoreError("the Redis store is not set up (call setup() first)")
        return self._client

    async def _run(self, script: str, args: Sequence[Any], keys: Sequence[str] = ()) -> Any:
        self._db  # noqa: B018  (raises if not set up)
        return await self._scripts[script](keys=keys, args=args)

    # --- threads and messages ------------------------------------------------------

    async def get_or_create_thread(
        self, thread_id: str, resource_id: str, metadata: Mapping[str, Any] | None = None
    ) -> Thread:
        """The thread, created at version 0 if new; WrongResource if it is another's."""
        now = repr(self._clock())
        args = (self.prefix, thread_id, resource_id, now, codec.dumps(metadata))
        thread = _thread(thread_id, await self._run("get_or_create", args))
        if thread.resource_id != resource_id:
            raise WrongResource(thread_id)
        return thread

    async def get_thread(self, thread_id: str) -> Thread | None:
        fields = await self._db.hmget(self._key("thread", thread_id), ["r", "v", "c", "u", "m"])
        return None if fields[0] is None else _thread(thread_id, fields)

    async def list_threads(
        self, resource_id: str, *, limit: int = 50, offset: int = 0
    ) -> list[Thread]:
        """The resource's threads, most recently updated first."""
        ids = await self._db.zrevrange(self._key("res", resource_id), offset, offset + limit - 1)
        if not ids:
            return []
        async with self._db.pipeline(transaction=True) as pipe:
            for i in ids:
                pipe.hmget(self._key("thread", _text(i)), ["r", "v", "c", "u", "m"])
            rows = await pipe.execute()
        return [_thread(_text(i), r) for i, r in zip(ids, rows, strict=True) if r[0]]

    async def delete_thread(self, thread_id: str) -> bool:
        """Delete the thread, its messages and its working memory; False if absent."""
        return bool(await self._run("delete", (self.prefix, thread_id)))

    async def messages(self, thread_id: str, *, last: int | None = None) -> list[Message]:
        """The thread's messages in order (none for an unknown thread); `last` keeps
        only the newest N."""
        if last is not None and last <= 0:
            return []
        start = 0 if last is None else -last
        rows = await self._db.lrange(self._key("msgs", thread_id), start, -1)
        return [codec.decode_message(r) for r in rows]

    async def append(
        self, thread_id: str, messages: Sequence[Message], *, expected_version: int
    ) -> Thread:
        """Append and bump the version in one script, iff the version is still
        `expected_version`; else ThreadConflict and nothing is written."""
        encoded = [codec.encode_message(m) for m in messages]
        return await self._append_encoded(thread_id, encoded, expected_version)

    async def _append_encoded(
        self, thread_id: str, encoded: Sequence[bytes], expected_version: int
    ) -> Thread:
        # Apart from `append` so that tests can hand the script a batch it must refuse.
        now = repr(self._clock())
        args = (self.prefix, thread_id, str(expected_version), now, *encoded)
        reply = await self._run("append", args)
        status = reply[0]
        if status == b"missing":
            raise ThreadNotFound(thread_id)
        if status == b"conflict":
            raise ThreadConflict(thread_id, expected_version, int(reply[1]))
        if status == b"corrupt":
            raise CorruptRecord(f"message {int(reply[1])} of the batch is not a message")
        return _thread(thread_id, reply[1])

    # --- leases ----------------------------------------------------------------------

    async def acquire_lease(self, thread_id: str, owner: str, ttl: float) -> bool:
        """Take the lease if free (or expired: the key is gone), or renew it if it is
        already `owner`'s."""
        ms = max(1, int(ttl * 1000))
        return bool(await self._run("acquire", (owner, ms, thread_id), keys=self._lease(thread_id)))

    async def release_lease(self, thread_id: str, owner: str) -> None:
        """Release the lease if `owner` still holds it (never someone else's)."""
        await self._run("release", (owner, thread_id), keys=self._lease(thread_id))

    def _lease(self, thread_id: str) -> tuple[str, str]:
        return self._key("lease", thread_id), self._key("holders", self.replica_id)

    # --- working memory --------------------------------------------------------------

    async def get_working_memory(self, scope: Scope, key: str) -> str | None:
        text = await self._db.get(self._key(f"wm:{scope}", key))
        return None if text is None else _text(text)

    async def set_working_memory(self, scope: Scope, key: str, text: str) -> None:
        await self._db.set(self._key(f"wm:{scope}", key), text)

    # --- runs --------------------------------------------------------------------------

    async def start_run(self, run: RunRecord) -> None:
        """Record the run (and any steps it carries); starting it again keeps the first
        record, so a resumed run does not lose the steps it already has."""
        fields = {
            c: v
            for c, v in zip(codec.RUN_COLUMNS, codec.run_values(run, self.replica_id), strict=True)
            if v is not None
        }
        args = [run.id, run.status, *(str(x) for pair in fields.items() for x in pair)]
        keys = (self._key("run", run.id), self._key("running", self.replica_id))
        await self._run("start_run", args, keys=keys)
        for step in run.steps:
            await self.record_step(step)

    async def record_step(self, step: StepRecord) -> None:
        """Record a step; recording the same (run, index) again replaces it."""
        doc = orjson.dumps(codec.step_to_doc(step))
        await self._db.hset(self._key("steps", step.run_id), str(step.index), doc)

    async def finish_run(
        self, run_id: str, status: Literal["ok", "error"], error: str | None
    ) -> None:
        args = (self.prefix, run_id, status, repr(self._clock()), error or "")
        await self._run("finish_run", args, keys=(self._key("run", run_id),))

    async def get_run(self, run_id: str) -> RunRecord | None:
        async with self._db.pipeline(transaction=True) as pipe:  # one snapshot
            pipe.hgetall(self._key("run", run_id))
            pipe.hgetall(self._key("steps", run_id))
            raw_run, raw_steps = await pipe.execute()
        if not raw_run:
            return None
        row: dict[str, Any] = {c: None for c in codec.RUN_COLUMNS}
        row.update((_text(k), _text(v)) for k, v in raw_run.items())
        steps = sorted((orjson.loads(s) for s in raw_steps.values()), key=lambda s: s["index"])
        return codec.run_from_row(row, steps)

    async def recover(self, keep: Collection[str] = ()) -> Recovered:
        """Release this replica's leases and finish its running runs as interrupted
        (but for those in `keep`), in one script."""
        args = (self.prefix, self.replica_id, INTERRUPTED, repr(self._clock()), *keep)
        leases, runs = await self._run("recover", args)
        return Recovered(int(leases), int(runs))

    # --- retention ---------------------------------------------------------------------

    async def sweep(self, idle_for: float) -> int:
        """Delete threads not updated for `idle_for` seconds, except those a run holds
        a live lease on; returns how many."""
        cutoff, total, skipped = repr(self._clock() - idle_for), 0, 0
        while True:
            args = (self.prefix, cutoff, skipped, _SWEEP_BATCH)
            deleted, scanned = (int(n) for n in await self._run("sweep", args))
            total, skipped = total + deleted, skipped + scanned - deleted
            if scanned < _SWEEP_BATCH:
                return total

    def _key(self, kind: str, name: str) -> str:
        return f"{self.prefix}{kind}:{name}"


def _text(value: object) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _thread(thread_id: str, fields: Sequence[Any]) -> Thread:
    resource, version, created, updated, metadata = fields
    return Thread(
        id=thread_id,
        resource_id=_text(resource),
        version=int(version),
        created_at=float(created),
        updated_at=float(updated),
        metadata=codec.loads(metadata),
    )
