"""What the three stores share: the test seam, the wall clock, the schema-version check,
a replica id for a store given none."""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable
from types import TracebackType
from typing import Self

from bastion.memory.base import MemoryStoreError

FaultHook = Callable[[], Awaitable[None]]
"""A test seam: awaited inside `append`'s transaction after the messages are written and
before the version is bumped. A hook that raises simulates a crash at the worst moment."""

WallClock = Callable[[], float]
"""Seconds since the epoch (`time.time`). Stores persist timestamps, so unlike the
monotonic `Clock` of the resilience layer this clock must mean the same in every process;
tests inject one that can be moved forward to make threads look idle."""


def new_replica_id() -> str:
    """A replica id no earlier process had: for a store that was not given one, whose
    `recover` then has nothing to let go of."""
    return f"anonymous-{uuid.uuid4().hex}"


class SchemaTooNew(MemoryStoreError):
    """The database was migrated by a newer Bastion; this one will not guess at it."""

    def __init__(self, found: int, known: int) -> None:
        super().__init__(
            f"memory schema is at version {found}, this Bastion knows up to {known}; "
            "upgrade Bastion or point it at another database"
        )
        self.found = found
        self.known = known


def pending(current: int, known: int) -> range:
    """The indexes of the migrations still to run to go from `current` to `known`."""
    if current > known:
        raise SchemaTooNew(current, known)
    return range(current, known)


class SetupOnEnter:
    """`async with Store(...) as store:` runs `setup()` on entry and `close()` on exit."""

    async def setup(self) -> None:
        raise NotImplementedError

    async def close(self) -> None:
        raise NotImplementedError

    async def __aenter__(self) -> Self:
        await self.setup()
        return self

    async def __aexit__(
        self, t: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.close()
