"""`Memory.turn`: runs on one thread take turns, see each other, and never interleave —
over every store, with two `Memory` objects on two store connections standing in for
two replicas."""

from __future__ import annotations

import asyncio

import pytest

from bastion.memory import (
    Memory,
    MemoryStoreError,
    ThreadBusy,
    ThreadConflict,
    WrongResource,
)
from bastion.resilience.clock import FakeClock
from bastion.types import Message


async def test_fifty_concurrent_turns_lose_nothing_and_never_interleave(make_store):
    replicas = [Memory(await make_store(), last_n=200) for _ in range(2)]
    seen: dict[int, tuple[int, list[str | None]]] = {}

    async def run(i: int) -> None:
        async with replicas[i % 2].turn("t", "alice") as turn:
            seen[i] = (turn.version, [m.content for m in turn.history])
            await asyncio.sleep(0)  # let the others pile up on the thread meanwhile
            await turn.commit([Message("user", f"q{i}"), Message("assistant", f"a{i}")])

    await asyncio.gather(*(run(i) for i in range(50)))

    final = [m.content for m in await replicas[0].store.messages("t")]
    assert len(final) == 100
    order = [int(q[1:]) for q in final[::2]]
    assert sorted(order) == list(range(50))
    assert final[1::2] == [f"a{i}" for i in order]  # every answer right after its question
    assert (await replicas[0].store.get_thread("t")).version == 50
    for position, i in enumerate(order):  # each turn saw exactly the turns before it
        assert seen[i] == (position, final[: 2 * position])


async def test_a_turn_gets_the_last_n_messages_and_its_version(store):
    memory = Memory(store, last_n=4)
    for i in range(3):
        async with memory.turn("t", "alice") as turn:
            await turn.commit([Message("user", f"q{i}"), Message("assistant", f"a{i}")])

    async with memory.turn("t", "alice") as turn:
        assert [m.content for m in turn.history] == ["q1", "a1", "q2", "a2"]
        assert turn.version == 3


async def test_a_turn_on_another_resources_thread_raises_wrong_resource(store):
    memory = Memory(store)
    async with memory.turn("t", "alice") as turn:
        await turn.commit([Message("user", "mine")])

    with pytest.raises(WrongResource):
        async with memory.turn("t", "mallory"):
            pytest.fail("entered another resource's thread")

    assert [m.content for m in await store.messages("t")] == ["mine"]
    assert (await store.get_thread("t")).version == 1
    assert await store.acquire_lease("t", "probe", 1) is True  # and it took no lease


async def test_a_busy_thread_raises_thread_busy_after_wait_and_writes_nothing(store):
    clock = FakeClock()
    memory = Memory(store, wait=5.0, clock=clock)
    await store.get_or_create_thread("t", "alice")
    await store.acquire_lease("t", "someone-else", 60)

    with pytest.raises(ThreadBusy) as caught:
        async with memory.turn("t", "alice"):
            pytest.fail("entered a busy thread")

    assert caught.value.waited >= 5.0
    assert max(clock.sleeps) <= 0.25  # polled with capped backoff, not one long sleep
    assert (await store.get_thread("t")).version == 0


async def test_a_crashed_holders_lease_expires_and_the_next_turn_gets_in(store):
    await store.get_or_create_thread("t", "alice")
    await store.acquire_lease("t", "crashed-run", 0.3)  # never released
    memory = Memory(store, wait=5.0)

    async with memory.turn("t", "alice") as turn:
        await turn.commit([Message("user", "after the crash")])

    assert (await store.get_thread("t")).version == 1


async def test_a_live_turn_renews_its_lease_past_the_ttl(make_store):
    holder = Memory(await make_store(), lease_ttl=0.3)
    other = Memory(await make_store(), wait=0.1)

    async with holder.turn("t", "alice") as turn:
        await asyncio.sleep(0.7)  # more than two lease lifetimes
        with pytest.raises(ThreadBusy):
            async with other.turn("t", "alice"):
                pytest.fail("the lease of a live turn expired")
        await turn.commit([Message("user", "still mine")])
        assert not turn.lease_lost


async def test_a_turn_that_lost_its_lease_cannot_overwrite_the_next_one(make_store):
    """The lease is the queue; compare-and-set is the safety net under it."""
    first, second = Memory(await make_store()), Memory(await make_store())

    async with first.turn("t", "alice") as slow:
        await first.store.release_lease("t", slow.owner)  # as if it had expired
        async with second.turn("t", "alice") as fast:
            await fast.commit([Message("user", "fast")])
        with pytest.raises(ThreadConflict):
            await slow.commit([Message("user", "slow")])

    assert [m.content for m in await first.store.messages("t")] == ["fast"]


async def test_a_failed_turn_commits_nothing_and_frees_the_thread(store):
    memory = Memory(store, wait=1.0)

    with pytest.raises(RuntimeError):
        async with memory.turn("t", "alice"):
            raise RuntimeError("the model failed")

    async with memory.turn("t", "alice") as turn:
        assert turn.version == 0
        await turn.commit([Message("user", "retry")])


async def test_commit_after_the_turn_is_refused(store):
    memory = Memory(store)
    async with memory.turn("t", "alice") as turn:
        pass

    with pytest.raises(MemoryStoreError):
        await turn.commit([Message("user", "too late")])
    assert await store.messages("t") == []


async def test_working_memory_per_thread_and_per_resource_through_a_turn(store):
    memory = Memory(store)
    async with memory.turn("t1", "alice") as turn:
        await turn.set_working_memory("t1 notes")
        await turn.set_working_memory("alice likes tea", scope="resource")
    async with memory.turn("t2", "alice") as turn:
        assert await turn.working_memory() is None
        assert await turn.working_memory("resource") == "alice likes tea"

    assert await memory.working_memory("thread", "t1") == "t1 notes"
    await memory.set_working_memory("resource", "alice", "alice likes coffee now")
    assert await memory.working_memory("resource", "alice") == "alice likes coffee now"


async def test_facade_reads_and_deletes_only_the_resources_own_threads(store):
    memory = Memory(store)
    async with memory.turn("t", "alice") as turn:
        await turn.commit([Message("user", "hi")])

    assert [t.id for t in await memory.threads("alice")] == ["t"]
    assert [m.content for m in await memory.messages("t", "alice")] == ["hi"]
    with pytest.raises(WrongResource):
        await memory.messages("t", "mallory")
    with pytest.raises(WrongResource):
        await memory.delete_thread("t", "mallory")
    assert await memory.delete_thread("t", "alice") is True
    assert await memory.delete_thread("t", "alice") is False


async def test_the_retention_task_deletes_idle_threads_in_the_background(store, wall):
    memory = Memory(store, retention=60, sweep_every=0.01)
    async with memory.turn("old", "alice") as turn:
        await turn.commit([Message("user", "long ago")])
    wall.advance(3600)
    async with memory.turn("new", "alice") as turn:
        await turn.commit([Message("user", "just now")])

    async with memory:  # start() ... aclose()
        for _ in range(500):
            if await store.get_thread("old") is None:
                break
            await asyncio.sleep(0.01)

    assert await store.get_thread("old") is None
    assert await store.get_thread("new") is not None
    assert memory._sweeper is None  # stopped
