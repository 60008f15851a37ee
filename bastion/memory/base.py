"""The memory seam: threads of messages, working memory, run steps, one store protocol.

A thread belongs to one resource (a user, a tenant) and carries a version. A turn's
messages are appended together with the version bump, atomically and only if the
version is still the one the turn started from (compare-and-set): two runs can never
interleave their messages or lose one. Runs on one thread take turns through a lease
(`Memory.turn`), so the second run waits and then sees the first one's messages;
the compare-and-set is the safety net underneath.

Each store is one replica's handle: it records its `replica_id` with every lease it
takes and every run it starts, so that a process restarted under the same id can let
go of what its crashed predecessor held (`recover`) — and of nothing another replica
holds.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol, runtime_checkable

from bastion.resilience.errors import BastionError
from bastion.types import Message

Scope = Literal["thread", "resource"]

INTERRUPTED = "interrupted: the process serving it stopped"
"""The error `recover` gives a run its replica left `running` when it stopped."""


@dataclass(frozen=True, slots=True)
class Thread:
    id: str
    resource_id: str
    version: int
    created_at: float
    updated_at: float
    metadata: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class StepRecord:
    """One step of a run (a model call or a tool call): what went in, what came out.

    `index` orders steps within a run; `kind` is "model" or "tool"; `input` and `output`
    are JSON-ready; `status` is "ok" or "error".
    """

    run_id: str
    index: int
    kind: Literal["model", "tool"]
    name: str
    input: Mapping[str, Any]
    output: Mapping[str, Any]
    status: Literal["ok", "error"]
    started_at: float
    ended_at: float


@dataclass(frozen=True, slots=True)
class RunRecord:
    id: str
    agent: str
    thread_id: str | None
    resource_id: str | None
    status: Literal["running", "ok", "error"]
    started_at: float
    ended_at: float | None
    steps: tuple[StepRecord, ...] = ()
    error: str | None = None
    replica: str | None = None  # who recorded it: set by the store, None before v2


@dataclass(frozen=True, slots=True)
class Recovered:
    """What `recover` let go of: leases released, runs marked interrupted."""

    leases: int
    runs: int


class MemoryStoreError(BastionError):
    """Base of the memory errors."""


class ThreadNotFound(MemoryStoreError):
    def __init__(self, thread_id: str) -> None:
        super().__init__(f"no thread {thread_id!r}")
        self.thread_id = thread_id


class WrongResource(MemoryStoreError):
    """The thread exists but belongs to another resource; nothing is revealed of it."""

    def __init__(self, thread_id: str) -> None:
        super().__init__(f"thread {thread_id!r} belongs to another resource")
        self.thread_id = thread_id


class ThreadConflict(MemoryStoreError):
    """The thread changed since the turn began (compare-and-set failed)."""

    def __init__(self, thread_id: str, expected: int, actual: int) -> None:
        super().__init__(
            f"thread {thread_id!r} is at version {actual}, the turn expected {expected}"
        )
        self.thread_id = thread_id
        self.expected = expected
        self.actual = actual


class CorruptRecord(MemoryStoreError):
    """A record the store holds, or was asked to write, is not well formed (a message
    with an unknown role, a row that does not decode); nothing was written."""


class ThreadBusy(MemoryStoreError):
    """Another run held the thread longer than this one was willing to wait."""

    def __init__(self, thread_id: str, waited: float) -> None:
        super().__init__(f"thread {thread_id!r} is busy with another run (waited {waited:g}s)")
        self.thread_id = thread_id
        self.waited = waited


@runtime_checkable
class MemoryStore(Protocol):
    """What a backend (SQLite, PostgreSQL, Redis) provides. Every method is atomic on
    its own; `append` is the only one that changes a thread's messages."""

    replica_id: str
    """The replica this store speaks for, recorded with its leases and runs."""

    async def setup(self) -> None:
        """Create or migrate the schema; idempotent."""

    async def close(self) -> None: ...

    async def get_or_create_thread(
        self, thread_id: str, resource_id: str, metadata: Mapping[str, Any] | None = None
    ) -> Thread:
        """The thread, created at version 0 if new; WrongResource if it is another's."""

    async def get_thread(self, thread_id: str) -> Thread | None: ...

    async def list_threads(
        self, resource_id: str, *, limit: int = 50, offset: int = 0
    ) -> list[Thread]:
        """The resource's threads, most recently updated first."""

    async def delete_thread(self, thread_id: str) -> bool:
        """Delete the thread, its messages and its working memory; False if absent."""

    async def messages(self, thread_id: str, *, last: int | None = None) -> list[Message]:
        """The thread's messages in order (none for an unknown thread); `last` keeps
        only the newest N."""

    async def append(
        self, thread_id: str, messages: Sequence[Message], *, expected_version: int
    ) -> Thread:
        """Append and bump the version by one, in one transaction, iff the version is
        `expected_version`; else ThreadConflict and nothing is written."""

    async def acquire_lease(self, thread_id: str, owner: str, ttl: float) -> bool:
        """Take the thread's lease for `ttl` seconds if it is free (or expired, or
        already `owner`'s). A lease outlives a crashed holder by at most `ttl`."""

    async def release_lease(self, thread_id: str, owner: str) -> None: ...

    async def get_working_memory(self, scope: Scope, key: str) -> str | None: ...

    async def set_working_memory(self, scope: Scope, key: str, text: str) -> None: ...

    async def start_run(self, run: RunRecord) -> None:
        """Record a run and the steps it carries; a run already recorded is kept as it
        is (a resumed run must not lose its steps)."""

    async def record_step(self, step: StepRecord) -> None:
        """Record a step; the same (run_id, index) again replaces it."""

    async def finish_run(
        self, run_id: str, status: Literal["ok", "error"], error: str | None
    ) -> None:
        """Set the run's outcome and end time; a run never started is left absent."""

    async def get_run(self, run_id: str) -> RunRecord | None: ...

    async def sweep(self, idle_for: float) -> int:
        """Delete threads not updated for `idle_for` seconds, except those with a live
        lease (a turn may begin on an old thread); returns how many."""

    async def recover(self, keep: Collection[str] = ()) -> Recovered:
        """Let go of what an earlier process with this `replica_id` left behind: release
        the leases it still holds and finish its `running` runs as errors (INTERRUPTED),
        except the runs named in `keep` (durable runs, which resume and finish later).
        Call once at start, before serving; another replica's leases and runs are never
        touched, even on a shared database."""
