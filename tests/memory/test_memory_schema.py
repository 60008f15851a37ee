"""Each store creates and migrates its own schema: idempotently, forward only."""

from __future__ import annotations

import pytest

from bastion.memory import SchemaTooNew
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

    assert (caught.value.found, caught.value.known) == (len(old.migrations) + 1, 1)
