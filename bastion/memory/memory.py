"""`Memory`: what an agent uses to read a thread, take its turn and write the result.

    async with memory.turn(thread_id, resource_id) as turn:
        answer = await model.complete(request_from(turn.history, user_message))
        await turn.commit([user_message, answer.message])

Runs on one thread take turns; they do not race and lose. A turn first waits for the
thread (runs in this process queue on a local lock, in arrival order; runs in other
processes are kept apart by the store's lease, polled with capped, jittered backoff),
then reads the version and the last `last_n` messages, and commits with compare-and-set
against that version. So the second of two concurrent runs sees the first one's answer.
If it cannot get the thread within `wait` seconds it gets ThreadBusy, never a silent
merge. A holder that crashes without releasing blocks the thread for at most
`lease_ttl`; a live holder renews its lease every `lease_ttl / 3`. Should a lease still
be lost (a holder paused longer than the lease), the compare-and-set underneath turns
the late commit into ThreadConflict: messages are never interleaved or lost.
"""

from __future__ import annotations

import asyncio
import random
import uuid
from collections.abc import AsyncIterator, Mapping, Sequence
from contextlib import asynccontextmanager, suppress
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any, Self

import structlog

from bastion.memory.base import (
    MemoryStore,
    MemoryStoreError,
    Scope,
    Thread,
    ThreadBusy,
    ThreadNotFound,
    WrongResource,
)
from bastion.resilience.clock import Clock, SystemClock, wait_for
from bastion.types import Message

_log = structlog.get_logger("bastion.memory")

# Lease polling backoff: attempt n sleeps uniform(0, min(FIRST * 2**n, MAX)) seconds
# (full jitter), never past the deadline. The cap bounds how long a freed thread can sit
# idle while a run in another process waits for it.
_FIRST_DELAY = 0.01
_MAX_DELAY = 0.25


class Turn:
    """One run's turn on a thread, between taking the thread and letting it go.

    `history` is the last N messages as they were when the turn began; `version` is the
    thread version they belong to, and moves on with each `commit`.
    """

    def __init__(
        self, store: MemoryStore, thread: Thread, history: Sequence[Message], owner: str
    ) -> None:
        self._store = store
        self.thread_id = thread.id
        self.resource_id = thread.resource_id
        self.history: tuple[Message, ...] = tuple(history)
        self.version = thread.version
        self.owner = owner
        self.lease_lost = False  # set if renewal found another holder; commits may conflict
        self._open = True

    async def commit(self, messages: Sequence[Message]) -> Thread:
        """Append `messages` iff nobody wrote since this turn's version (else
        ThreadConflict and nothing is written). A turn may commit more than once."""
        if not self._open:
            raise MemoryStoreError("the turn is over: commit inside `async with memory.turn()`")
        thread = await self._store.append(self.thread_id, messages, expected_version=self.version)
        self.version = thread.version
        return thread

    async def working_memory(self, scope: Scope = "thread") -> str | None:
        """The working memory of this turn's thread, or of its resource."""
        return await self._store.get_working_memory(scope, self._key(scope))

    async def set_working_memory(self, text: str, scope: Scope = "thread") -> None:
        await self._store.set_working_memory(scope, self._key(scope), text)

    def _key(self, scope: Scope) -> str:
        return self.thread_id if scope == "thread" else self.resource_id


@dataclass(slots=True)
class _Queue:
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    users: int = 0


class Memory:
    """Threads, turns and working memory over one `MemoryStore` (see the module doc).

    `last_n`: messages of history a turn gets. `lease_ttl`: how long a crashed holder can
    block a thread. `wait`: how long a turn waits for a busy thread before ThreadBusy.
    `retention`: with `start()`, threads idle that many seconds are deleted by a
    background sweep every `sweep_every` seconds (default: a tenth of `retention`, from
    1 s to 1 h). The store is the caller's: `aclose()` stops the sweep, not the store.
    """

    def __init__(
        self,
        store: MemoryStore,
        *,
        last_n: int = 20,
        lease_ttl: float = 30.0,
        wait: float = 30.0,
        retention: float | None = None,
        sweep_every: float | None = None,
        clock: Clock | None = None,
    ) -> None:
        if last_n < 0 or lease_ttl <= 0 or wait < 0:
            raise ValueError("last_n and wait must be non-negative and lease_ttl positive")
        if retention is not None and retention <= 0:
            raise ValueError(f"retention must be positive, got {retention}")
        self.store = store
        self.last_n = last_n
        self.lease_ttl = lease_ttl
        self.wait = wait
        self.retention = retention
        self.sweep_every = sweep_every or min(max((retention or 0) / 10, 1.0), 3600.0)
        self._clock = clock or SystemClock()
        self._queues: dict[str, _Queue] = {}
        self._sweeper: asyncio.Task[None] | None = None
        self._stop = asyncio.Event()

    # --- turns -----------------------------------------------------------------------

    @asynccontextmanager
    async def turn(
        self, thread_id: str, resource_id: str, *, metadata: Mapping[str, Any] | None = None
    ) -> AsyncIterator[Turn]:
        """Wait for the thread (at most `wait` s, else ThreadBusy), then hold it for the
        block. The thread is created on first use; another resource's → WrongResource,
        before any waiting and with nothing changed."""
        await self.store.get_or_create_thread(thread_id, resource_id, metadata)
        started = self._clock.now()
        deadline = started + self.wait
        async with self._queue(thread_id, started, deadline):
            owner = uuid.uuid4().hex
            keeper: asyncio.Task[None] | None = None
            turn: Turn | None = None
            try:
                # Inside the try: cancelled after the store granted the lease, we still
                # release it (release is owner-checked, so it is harmless if we never had it).
                await self._acquire(thread_id, owner, started, deadline)
                # Version before messages: should anything slip in between, the version
                # is the older one and the commit conflicts instead of hiding it.
                thread = await self.store.get_thread(thread_id)
                if thread is None:  # deleted while we waited
                    raise ThreadNotFound(thread_id)
                history = await self.store.messages(thread_id, last=self.last_n)
                turn = Turn(self.store, thread, history, owner)
                keeper = asyncio.create_task(self._keep_lease(turn))
                yield turn
            finally:
                if turn is not None:
                    turn._open = False
                if keeper is not None:
                    keeper.cancel()
                    await asyncio.wait({keeper})
                await self._release(thread_id, owner)

    @asynccontextmanager
    async def _queue(self, thread_id: str, started: float, deadline: float) -> AsyncIterator[None]:
        # Runs of this process wait here in arrival order instead of all polling the store.
        queue = self._queues.setdefault(thread_id, _Queue())
        queue.users += 1
        try:
            try:
                remaining = max(0.0, deadline - self._clock.now())
                await wait_for(self._clock, queue.lock.acquire(), remaining)
            except TimeoutError:
                raise ThreadBusy(thread_id, self._clock.now() - started) from None
            try:
                yield
            finally:
                queue.lock.release()
        finally:
            queue.users -= 1
            if not queue.users:  # the table holds only threads someone is waiting for
                del self._queues[thread_id]

    async def _acquire(self, thread_id: str, owner: str, started: float, deadline: float) -> None:
        ceiling = _FIRST_DELAY
        while not await self.store.acquire_lease(thread_id, owner, self.lease_ttl):
            remaining = deadline - self._clock.now()
            if remaining <= 0:
                raise ThreadBusy(thread_id, self._clock.now() - started)
            await self._clock.sleep(min(remaining, random.uniform(0.0, ceiling)))
            ceiling = min(ceiling * 2, _MAX_DELAY)

    async def _keep_lease(self, turn: Turn) -> None:
        # Ends on `turn._open`, not only on cancel: a store client may swallow a
        # cancellation that lands mid-call (redis-py 8.1 does), and the turn waits for us.
        while turn._open:
            await self._clock.sleep(self.lease_ttl / 3)
            if not turn._open:
                return
            try:
                if not await self.store.acquire_lease(turn.thread_id, turn.owner, self.lease_ttl):
                    turn.lease_lost = True
                    _log.warning("memory.lease_lost", thread_id=turn.thread_id)
                    return
            except Exception as exc:  # a blip: the lease has two more periods to go
                _log.warning("memory.lease_renewal_failed", thread_id=turn.thread_id, error=exc)

    async def _release(self, thread_id: str, owner: str) -> None:
        try:
            await self.store.release_lease(thread_id, owner)
        except Exception as exc:
            # Never mask the turn's own outcome; the lease expires within lease_ttl.
            _log.warning("memory.lease_release_failed", thread_id=thread_id, error=exc)

    # --- threads and working memory ----------------------------------------------------

    async def threads(self, resource_id: str, *, limit: int = 50, offset: int = 0) -> list[Thread]:
        """The resource's threads, most recently updated first."""
        return await self.store.list_threads(resource_id, limit=limit, offset=offset)

    async def messages(
        self, thread_id: str, resource_id: str, *, last: int | None = None
    ) -> list[Message]:
        """The thread's messages, if it is `resource_id`'s (else WrongResource)."""
        await self._owned(thread_id, resource_id)
        return await self.store.messages(thread_id, last=last)

    async def delete_thread(self, thread_id: str, resource_id: str) -> bool:
        """Delete the thread if it is `resource_id`'s (else WrongResource); False if absent."""
        if await self._owned(thread_id, resource_id) is None:
            return False
        return await self.store.delete_thread(thread_id)

    async def working_memory(self, scope: Scope, key: str) -> str | None:
        """Working memory of a thread (`key` = thread id) or a resource (resource id)."""
        return await self.store.get_working_memory(scope, key)

    async def set_working_memory(self, scope: Scope, key: str, text: str) -> None:
        await self.store.set_working_memory(scope, key, text)

    async def _owned(self, thread_id: str, resource_id: str) -> Thread | None:
        thread = await self.store.get_thread(thread_id)
        if thread is not None and thread.resource_id != resource_id:
            raise WrongResource(thread_id)
        return thread

    # --- retention -----------------------------------------------------------------------

    async def sweep(self) -> int:
        """Delete the threads idle longer than `retention` now; returns how many."""
        if self.retention is None:
            return 0
        return await self.store.sweep(self.retention)

    def start(self) -> None:
        """Start the background retention sweep (if `retention` is set); idempotent."""
        if self.retention is not None and (self._sweeper is None or self._sweeper.done()):
            self._stop = asyncio.Event()
            self._sweeper = asyncio.create_task(self._sweep_forever(), name="memory-retention")

    async def aclose(self) -> None:
        """Stop the background sweep and wait for it to end."""
        sweeper, self._sweeper = self._sweeper, None
        if sweeper is not None:
            self._stop.set()  # ends the loop even if a store call swallows the cancel
            sweeper.cancel()
            await asyncio.wait({sweeper})

    async def __aenter__(self) -> Self:
        self.start()
        return self

    async def __aexit__(
        self, t: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.aclose()

    async def _sweep_forever(self) -> None:
        stop = self._stop
        while not stop.is_set():
            try:
                if deleted := await self.sweep():
                    _log.info("memory.swept", threads=deleted, idle_for=self.retention)
            except Exception as exc:  # the store is away: try again next period
                _log.warning("memory.sweep_failed", error=exc)
            with suppress(TimeoutError):
                await wait_for(self._clock, stop.wait(), self.sweep_every)
