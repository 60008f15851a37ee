"""`SqliteWorker`: a whole operation, transaction included, runs as one function on the
connection's own thread — committed whole, rolled back whole, one at a time."""

from __future__ import annotations

import asyncio
import sqlite3
import threading

import pytest

from bastion.memory.sqlite_worker import SqliteWorker


class Boom(Exception):
    pass


@pytest.fixture
async def worker(tmp_path):
    w = await SqliteWorker.open(str(tmp_path / "w.db"), busy_timeout=1.0)
    await w.call(lambda c: c.execute("CREATE TABLE t (n INTEGER)"))
    yield w
    await w.close()


def insert_then(conn: sqlite3.Connection, n: int, fail: bool) -> int:
    conn.execute("INSERT INTO t VALUES (?)", (n,))
    if fail:
        raise Boom
    return n


def rows(conn: sqlite3.Connection) -> list[int]:
    return [r[0] for r in conn.execute("SELECT n FROM t ORDER BY rowid")]


async def test_a_write_that_returns_is_committed(worker):
    assert await worker.write(insert_then, 1, False) == 1

    assert await worker.read(rows) == [1]


async def test_a_write_that_raises_half_way_is_rolled_back_and_the_next_one_gets_in(worker):
    with pytest.raises(Boom):
        await worker.write(insert_then, 1, True)

    assert await worker.read(rows) == []
    await worker.write(insert_then, 2, False)  # no transaction was left open
    assert await worker.read(rows) == [2]


async def test_every_operation_runs_on_the_one_thread_in_the_order_it_was_given(worker):
    def where(conn: sqlite3.Connection, n: int) -> int:
        conn.execute("INSERT INTO t VALUES (?)", (n,))
        return threading.get_ident()

    threads = await asyncio.gather(*(worker.write(where, n) for n in range(50)))

    assert len(set(threads)) == 1 and threads[0] != threading.get_ident()
    assert await worker.read(rows) == list(range(50))


async def test_an_operation_cancelled_while_queued_never_runs(worker):
    release = threading.Event()
    busy = asyncio.ensure_future(worker.call(lambda c: release.wait(5)))
    queued = asyncio.ensure_future(worker.write(insert_then, 1, False))
    await asyncio.sleep(0.01)

    queued.cancel()
    await asyncio.wait([queued])  # the cancellation has reached the thread's queue
    release.set()
    await busy

    assert queued.cancelled()
    assert await worker.read(rows) == []


async def test_close_waits_for_the_operations_already_queued(worker):
    writes = [asyncio.ensure_future(worker.write(insert_then, n, False)) for n in range(5)]
    await asyncio.sleep(0)  # submitted to the thread

    await worker.close()

    assert [await w for w in writes] == list(range(5))
