"""The SQLite store's threads: reads do not wait for the writer, and an append whose
caller is cancelled lands whole or not at all."""

from __future__ import annotations

import asyncio
import threading

from bastion.memory import SqliteStore
from bastion.types import Message


async def test_reads_do_not_wait_behind_a_busy_writer(tmp_path):
    async with SqliteStore(tmp_path / "memory.db") as store:
        await store.get_or_create_thread("t", "alice")
        release = threading.Event()
        busy = asyncio.ensure_future(store._writer.call(lambda c: release.wait(5)))
        try:
            thread = await asyncio.wait_for(store.get_thread("t"), timeout=1)
        finally:
            release.set()
            await busy

        assert thread is not None and thread.version == 0


async def test_an_append_cancelled_mid_transaction_still_lands_whole(tmp_path):
    """Once the append's function has started on the writer thread it runs to COMMIT,
    whatever happens to the task that asked for it: all of it, never half."""
    inside, go_on = asyncio.Event(), asyncio.Event()

    async def pause() -> None:  # the messages are written, the version is not yet
        inside.set()
        await go_on.wait()

    path = tmp_path / "memory.db"
    async with SqliteStore(path) as plain, SqliteStore(path, fault_after_messages=pause) as paused:
        await plain.get_or_create_thread("t", "alice")
        batch = [Message("user", "q"), Message("assistant", "a")]
        task = asyncio.ensure_future(paused.append("t", batch, expected_version=0))
        await inside.wait()

        task.cancel()
        go_on.set()
        await asyncio.gather(task, return_exceptions=True)
        await paused.release_lease("t", "nobody")  # a write, so queued behind the append

        assert (await plain.get_thread("t")).version == 1
        assert [m.content for m in await plain.messages("t")] == ["q", "a"]
