"""Each store creates and migrates its own schema: idempotently, forward only."""

from __future__ import annotations

import time

import pytest

from bastion.memory import Recovered, RunRecord, SchemaTooNew
from bastion.types import Message


def future_migration(backend: str, store):
    """A migration the next Bastion might ship, in the backend's own terms."""
    if backend == "redis":

        async def mark(client, prefix: str) -> None:
            await client.set(prefix + "migrated-to-2", "yes")

        return mark
    return ("ALTER TABLE threads ADD COLUMN note TEXT",)


async def test_setup_twice_is_harmless(make_store):
    store = await make_store()
    await store.get_or_create_thread("t", "alice")
    await store.append("t", [Message("user", "kept")], expected_version=0)
    version = await store.schema_version()

    await store.setup()
    again = await make_store()  # a second replica starting up on the same data

    assert version == len(store.migrations)
    assert await again.schema_version() == version
    assert [m.content for m in await again.messages("t")] == ["kept"]


async def test_a_store_at_an_older_schema_version_migrates_and_keeps_its_data(make_store, backend):
    old = await make_store()  # today's code: the "older" version
    await old.get_or_create_thread("t", "alice")
    await old.append("t", [Message("user", "from v1")], expected_version=0)
    newer_cls = type(
        "Newer", (type(old),), {"migrations": (*old.migrations, future_migration(backend, old))}
    )

    newer = await make_store(newer_cls)

    assert await newer.schema_version() == len(old.migrations) + 1
    assert [m.content for m in await newer.messages("t")] == ["from v1"]
    await newer.append("t", [Message("assistant", "on v2")], expected_version=1)
    await newer.setup()  # and idempotent at the new version too
    assert await newer.schema_version() == len(old.migrations) + 1
    if backend == "redis":
        assert await newer._db.get(newer.prefix + "migrated-to-2") == b"yes"


async def test_a_schema_newer_than_the_code_is_refused(make_store, backend):
    old = await make_store()
    newer_cls = type(
        "Newer", (type(old),), {"migrations": (*old.migrations, future_migration(backend, old))}
    )
    await make_store(newer_cls)

    with pytest.raises(SchemaTooNew) as caught:
        await old.setup()

    assert (caught.value.found, caught.value.known) == (
        len(old.migrations) + 1,
        len(old.migrations),
    )


async def write_as_v1(backend: str, store) -> None:
    """A lease and a running run as the code of schema version 1 wrote them: no replica."""
    if backend == "redis":
        await store._db.set(store.prefix + "lease:t", "old-turn", px=60_000)
        await store._db.hset(
            store.prefix + "run:old-run",
            mapping={"id": "old-run", "agent": "support", "status": "running", "started_at": 1.0},
        )
    elif backend == "postgres":
        await store._db.execute(
            "INSERT INTO leases VALUES ('t', 'old-turn', clock_timestamp() + interval '60 s')"
        )
        await store._db.execute(
            "INSERT INTO runs VALUES ('old-run', 'support', 't', 'alice', 'running', 1, NULL, NULL)"
        )
    else:
        await store._write().write(
            lambda conn: conn.executescript(
                f"INSERT INTO leases VALUES ('t', 'old-turn', {time.time() + 60});"
                "INSERT INTO runs VALUES ('old-run', 'support', 't', 'alice', 'running', 1, "
                "NULL, NULL);"
            )
        )


async def test_a_v1_database_with_leases_and_runs_migrates_in_place_and_keeps_working(
    make_store, backend
):
    first = await make_store(setup=False)
    v1 = type("V1", (type(first),), {"migrations": first.migrations[:1]})
    old = await make_store(v1, replica_id="replica-a")
    await old.get_or_create_thread("t", "alice")
    await write_as_v1(backend, old)
    await old.close()

    upgraded = await make_store(replica_id="replica-a")

    assert await upgraded.schema_version() == len(upgraded.migrations)
    run = await upgraded.get_run("old-run")
    assert run is not None and (run.status, run.replica) == ("running", None)
    # Nobody's: rows from before the upgrade are left to expire, not guessed at.
    assert await upgraded.recover() == Recovered(leases=0, runs=0)
    assert await upgraded.acquire_lease("t", "new-turn", 60) is False
    await upgraded.finish_run("old-run", "error", "stopped by hand")
    finished = await upgraded.get_run("old-run")
    assert finished is not None and finished.status == "error"
    await upgraded.start_run(RunRecord("new-run", "support", None, None, "running", 2.0, None))
    assert await upgraded.acquire_lease("u", "new-turn", 60) is True
    assert await upgraded.recover() == Recovered(leases=1, runs=1)
