"""The `MemoryStore` contract, run the same against SQLite, PostgreSQL and Redis."""

from __future__ import annotations

import asyncio

import pytest

from bastion.memory import (
    RunRecord,
    StepRecord,
    ThreadConflict,
    ThreadNotFound,
    WrongResource,
)
from bastion.types import Message, ToolCall


def user(text: str) -> Message:
    return Message("user", text)


async def contents(store, thread_id: str) -> list[str | None]:
    return [m.content for m in await store.messages(thread_id)]


async def test_a_new_thread_starts_empty_at_version_zero(store):
    thread = await store.get_or_create_thread("t", "alice", {"title": "hello"})

    assert (thread.id, thread.resource_id, thread.version) == ("t", "alice", 0)
    assert thread.metadata == {"title": "hello"}
    assert await store.messages("t") == []
    assert await store.get_thread("t") == thread
    assert await store.get_thread("absent") is None


async def test_append_with_current_version_appends_in_order_and_bumps_version(store):
    await store.get_or_create_thread("t", "alice")

    after = await store.append("t", [user("a"), user("b")], expected_version=0)
    after = await store.append("t", [user("c")], expected_version=after.version)

    assert after.version == 2
    assert await contents(store, "t") == ["a", "b", "c"]
    assert (await store.get_thread("t")).version == 2


async def test_every_message_field_round_trips(store):
    await store.get_or_create_thread("t", "alice")
    sent = [
        Message("system", "be brief ✓"),
        Message("assistant", None, (ToolCall("c1", "lookup", '{"q": "ü"}'),)),
        Message("tool", '{"ok": true}', tool_call_id="c1", name="lookup"),
    ]

    await store.append("t", sent, expected_version=0)

    assert await store.messages("t") == sent


async def test_stale_version_raises_conflict_and_writes_nothing(store):
    await store.get_or_create_thread("t", "alice")
    await store.append("t", [user("first")], expected_version=0)

    with pytest.raises(ThreadConflict) as caught:
        await store.append("t", [user("stale")], expected_version=0)

    assert (caught.value.expected, caught.value.actual) == (0, 1)
    assert await contents(store, "t") == ["first"]
    assert (await store.get_thread("t")).version == 1


async def test_append_to_an_unknown_thread_raises_thread_not_found(store):
    with pytest.raises(ThreadNotFound):
        await store.append("nope", [user("x")], expected_version=0)
    assert await store.messages("nope") == []


async def test_last_n_keeps_the_newest_messages_in_order(store):
    await store.get_or_create_thread("t", "alice")
    await store.append("t", [user(str(i)) for i in range(10)], expected_version=0)

    assert [m.content for m in await store.messages("t", last=3)] == ["7", "8", "9"]
    assert len(await store.messages("t", last=50)) == 10
    assert await store.messages("t", last=0) == []


async def test_another_resources_thread_raises_wrong_resource_and_changes_nothing(store):
    await store.get_or_create_thread("t", "alice", {"owner": "alice"})
    await store.append("t", [user("private")], expected_version=0)
    before = await store.get_thread("t")

    with pytest.raises(WrongResource):
        await store.get_or_create_thread("t", "mallory", {"owner": "mallory"})

    assert await store.get_thread("t") == before
    assert await contents(store, "t") == ["private"]
    assert await store.list_threads("mallory") == []


async def test_list_threads_is_most_recently_updated_first_and_pages(store, wall):
    for name in ("a", "b", "c"):
        await store.get_or_create_thread(name, "alice")
        wall.advance(1)
    await store.get_or_create_thread("other", "bob")
    await store.append("a", [user("bump")], expected_version=0)  # a is now the newest

    assert [t.id for t in await store.list_threads("alice")] == ["a", "c", "b"]
    assert [t.id for t in await store.list_threads("alice", limit=1, offset=1)] == ["c"]
    assert [t.id for t in await store.list_threads("bob")] == ["other"]


async def test_delete_thread_removes_messages_and_its_working_memory_only(store):
    await store.get_or_create_thread("t", "alice")
    await store.get_or_create_thread("keep", "alice")
    await store.append("t", [user("x")], expected_version=0)
    await store.set_working_memory("thread", "t", "notes on t")
    await store.set_working_memory("resource", "alice", "alice likes tea")

    assert await store.delete_thread("t") is True
    assert await store.delete_thread("t") is False

    assert await store.get_thread("t") is None
    assert await store.messages("t") == []
    assert await store.get_working_memory("thread", "t") is None
    assert await store.get_working_memory("resource", "alice") == "alice likes tea"
    assert [t.id for t in await store.list_threads("alice")] == ["keep"]
    # The id is free again, for anyone.
    assert (await store.get_or_create_thread("t", "bob")).version == 0


async def test_working_memory_is_kept_per_thread_and_per_resource(store):
    assert await store.get_working_memory("thread", "x") is None

    await store.set_working_memory("thread", "x", "thread notes")
    await store.set_working_memory("resource", "x", "resource notes")
    await store.set_working_memory("thread", "x", "thread notes, revised")

    assert await store.get_working_memory("thread", "x") == "thread notes, revised"
    assert await store.get_working_memory("resource", "x") == "resource notes"


async def test_a_lease_is_exclusive_renewable_and_released_only_by_its_owner(store):
    assert await store.acquire_lease("t", "run-1", 30) is True
    assert await store.acquire_lease("t", "run-2", 30) is False
    assert await store.acquire_lease("t", "run-1", 30) is True  # renewal

    await store.release_lease("t", "run-2")  # not the owner: no effect
    assert await store.acquire_lease("t", "run-2", 30) is False

    await store.release_lease("t", "run-1")
    assert await store.acquire_lease("t", "run-2", 30) is True


async def test_an_expired_lease_lets_a_new_owner_in(store):
    assert await store.acquire_lease("t", "crashed", 0.2) is True  # never released

    await asyncio.sleep(0.3)  # leases run on the server's clock: real time must pass

    assert await store.acquire_lease("t", "next", 30) is True
    await store.release_lease("t", "crashed")  # the late holder cannot free it
    assert await store.acquire_lease("t", "third", 30) is False


async def test_sweep_deletes_idle_threads_only(store, wall):
    for name in ("old", "old-but-leased"):
        await store.get_or_create_thread(name, "alice")
        await store.append(name, [user("x")], expected_version=0)
    await store.set_working_memory("thread", "old", "notes")
    wall.advance(3600)
    await store.get_or_create_thread("fresh", "alice")
    await store.acquire_lease("old-but-leased", "run", 30)  # a turn is on it right now

    assert await store.sweep(idle_for=60) == 1

    assert await store.get_thread("old") is None
    assert await store.messages("old") == []
    assert await store.get_working_memory("thread", "old") is None
    assert await store.get_thread("old-but-leased") is not None
    assert await store.get_thread("fresh") is not None
    assert await store.sweep(idle_for=60) == 0


async def test_sweep_pages_through_more_threads_than_one_batch(store, wall):
    for i in range(510):  # more than any store's batch
        await store.get_or_create_thread(f"t{i}", "alice")
    wall.advance(10)

    assert await store.sweep(idle_for=5) == 510
    assert await store.list_threads("alice") == []


async def test_run_and_step_records_round_trip(store):
    first = StepRecord("run-1", 0, "model", "gpt", {"prompt": "hi"}, {"text": "yo"}, "ok", 1.0, 2.0)
    await store.start_run(
        RunRecord("run-1", "support", "t", "alice", "running", 1.0, None, steps=(first,))
    )
    tool = StepRecord("run-1", 1, "tool", "lookup", {"q": [1, 2]}, {}, "error", 2.0, 3.5)
    await store.record_step(tool)
    retried = StepRecord("run-1", 1, "tool", "lookup", {"q": [1, 2]}, {"n": 3}, "ok", 2.0, 4.0)
    await store.record_step(retried)  # the same index again replaces it
    # Starting the run again (a resume) keeps what it already has.
    await store.start_run(RunRecord("run-1", "support", "t", "alice", "running", 9.0, None))
    await store.finish_run("run-1", "error", "tool failed twice")

    run = await store.get_run("run-1")

    assert (run.id, run.agent, run.thread_id, run.resource_id) == ("run-1", "support", "t", "alice")
    assert (run.status, run.error, run.started_at) == ("error", "tool failed twice", 1.0)
    assert run.ended_at is not None
    assert run.steps == (first, retried)
    assert await store.get_run("absent") is None


async def test_a_run_without_thread_or_steps_round_trips(store):
    await store.start_run(RunRecord("r", "batch", None, None, "running", 5.0, None))
    await store.finish_run("r", "ok", None)

    run = await store.get_run("r")

    assert (run.thread_id, run.resource_id, run.status, run.error, run.steps) == (
        None, None, "ok", None, (),
    )  # fmt: skip
