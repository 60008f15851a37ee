"""A turn's messages and its version bump land together or not at all, even when the
writer dies between the two."""

from __future__ import annotations

import asyncio
import signal
import sys
import textwrap
from pathlib import Path

import pytest

from bastion.memory import CorruptRecord, SqliteStore
from bastion.memory.codec import encode_message
from bastion.types import Message


class Crash(Exception):
    pass


@pytest.mark.parametrize("backend", ["sqlite", "postgres"])
async def test_a_crash_between_messages_and_version_bump_writes_nothing(make_store):
    """SQL stores: the `fault_after_messages` seam runs inside the append transaction,
    after the messages are inserted and before the version is bumped; raising there is
    the writer dying at the worst moment. The transaction must take the messages with it."""

    async def crash() -> None:
        raise Crash

    store = await make_store()
    await store.get_or_create_thread("t", "alice")
    await store.append("t", [Message("user", "before")], expected_version=0)
    faulty = await make_store(fault_after_messages=crash)

    doomed = [Message("user", "lost 1"), Message("user", "lost 2")]
    with pytest.raises(Crash):
        await faulty.append("t", doomed, expected_version=1)

    assert [m.content for m in await store.messages("t")] == ["before"]
    assert (await store.get_thread("t")).version == 1
    # Nothing half-written is in the way of the next turn.
    after = await store.append("t", [Message("user", "next")], expected_version=1)
    assert after.version == 2
    assert [m.content for m in await store.messages("t")] == ["before", "next"]


@pytest.mark.parametrize("backend", ["redis"])
async def test_a_batch_the_append_script_refuses_writes_nothing(store):
    """Redis: the append is one Lua script. Redis runs it with nothing interleaved but
    does not roll back the writes of a script that fails half-way, so the script checks
    every message before its first write. The honest fault to inject is therefore a
    batch whose *last* message the script rejects: had any write come before the check,
    the first messages or the version bump would show. (The Python codec refuses such a
    message before it is sent, so the test hands the script the raw batch.)"""
    await store.get_or_create_thread("t", "alice")
    good = [encode_message(Message("user", f"ok {i}")) for i in range(3)]

    for bad in (b'{"role": "hacker", "content": "x"}', b"not json", b"[1, 2]"):
        with pytest.raises(CorruptRecord):
            await store._append_encoded("t", [*good, bad], 0)

    assert await store.messages("t") == []
    assert (await store.get_thread("t")).version == 0
    assert (await store._append_encoded("t", good, 0)).version == 1


def _resp(*args: str | bytes) -> bytes:
    out = [b"*%d\r\n" % len(args)]
    for arg in args:
        data = arg.encode() if isinstance(arg, str) else arg
        out.append(b"$%d\r\n%s\r\n" % (len(data), data))
    return b"".join(out)


@pytest.mark.parametrize("backend", ["redis"])
async def test_an_append_whose_connection_dies_mid_call_is_all_or_nothing(store):
    """Redis: the client sends the append script call (a 2000-message batch) on a raw
    socket and hangs up without reading the answer, as a replica killed mid-call would.
    Meanwhile a reader watches the thread in MULTI/EXEC snapshots: at every moment the
    list holds exactly `version × 2000` messages, and it settles at all or nothing."""
    await store.get_or_create_thread("t", "alice")
    batch = [encode_message(Message("user", f"m{i}")) for i in range(2000)]
    script = store._scripts["append"]
    sha = await store._db.script_load(script.script)
    where = store._db.connection_pool.connection_kwargs
    _, writer = await asyncio.open_connection(where["host"], where["port"])
    db = str(where.get("db", 0))
    call = _resp("EVALSHA", sha, "0", store.prefix, "t", "0", "1.0", *batch)

    writer.write(_resp("SELECT", db) + call)
    writer.close()  # gone before any answer is read

    seen = set()
    for _ in range(200):
        async with store._db.pipeline(transaction=True) as pipe:
            pipe.hget(f"{store.prefix}thread:t", "v")
            pipe.llen(f"{store.prefix}msgs:t")
            version, length = await pipe.execute()
        seen.add((int(version), length))
        assert length == int(version) * 2000, f"half-written: v{version}, {length} messages"
        if int(version):
            break
        await asyncio.sleep(0.01)
    assert seen <= {(0, 0), (1, 2000)}


_CHILD = textwrap.dedent(
    """
    import asyncio, sys
    from bastion.memory import SqliteStore
    from bastion.types import Message

    async def hang():
        print("inside", flush=True)  # the messages are written, the version is not
        await asyncio.sleep(60)

    async def main(path):
        plain = SqliteStore(path)
        await plain.setup()
        thread = await plain.get_or_create_thread("t", "alice")
        for i in range(3):
            batch = [Message("user", f"q{i}"), Message("assistant", f"a{i}")]
            thread = await plain.append("t", batch, expected_version=thread.version)
        await plain.close()
        faulty = SqliteStore(path, fault_after_messages=hang)
        await faulty.setup()
        doomed = [Message("user", "x" * 10_000) for _ in range(400)]  # spills past the cache
        await faulty.append("t", doomed, expected_version=thread.version)

    asyncio.run(main(sys.argv[1]))
    """
)


REPO = Path(__file__).resolve().parents[2]


def wal_size(db: Path) -> int:
    return db.with_name(db.name + "-wal").stat().st_size


async def test_sqlite_writer_killed_mid_transaction_leaves_a_consistent_thread(tmp_path):
    """A real crash: a child process commits three turns, begins a fourth, and is
    SIGKILLed after inserting that turn's messages (4 MB, more than the page cache
    holds, so some reach the WAL uncommitted) and before the version
    bump. Afterwards the file holds exactly the three committed turns, passes SQLite's
    integrity check, and the next writer gets in at once (no stale lock)."""
    path = tmp_path / "memory.db"
    child = await asyncio.create_subprocess_exec(
        sys.executable, "-c", _CHILD, str(path),
        stdout=asyncio.subprocess.PIPE, cwd=REPO,
    )  # fmt: skip
    try:
        line = await asyncio.wait_for(child.stdout.readline(), timeout=20)
        assert line.strip() == b"inside"
    finally:
        child.send_signal(signal.SIGKILL)
        await child.wait()
    assert child.returncode == -signal.SIGKILL
    # The doomed turn's pages did reach the disk, uncommitted, in the write-ahead log.
    assert wal_size(path) > 1_000_000

    async with SqliteStore(path, busy_timeout=1.0) as store:
        thread = await store.get_thread("t")
        contents = [m.content for m in await store.messages("t")]
        integrity = await store._writer.call(
            lambda c: c.execute("PRAGMA integrity_check").fetchall()
        )

        assert thread.version == 3
        assert contents == ["q0", "a0", "q1", "a1", "q2", "a2"]
        assert [tuple(r) for r in integrity] == [("ok",)]
        after = await store.append("t", [Message("user", "q3")], expected_version=3)
        assert after.version == 4
