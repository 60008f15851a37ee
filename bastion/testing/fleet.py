"""`Fleet`: several fake upstreams started and stopped together."""

from __future__ import annotations

import asyncio
from collections.abc import Iterable, Iterator
from types import TracebackType
from typing import Self

from bastion.testing.log import AttemptLog
from bastion.testing.server import DEFAULT_TEXT, FakeUpstream


class Fleet:
    """Named fake upstreams, e.g. `Fleet(["primary", "secondary", "local"])`.

    Items are names (a `FakeUpstream` with that name and `text` is made) or upstreams
    built by hand for other options. Index by name: `fleet["primary"].base_url`.
    """

    def __init__(
        self, upstreams: Iterable[str | FakeUpstream], *, text: str = DEFAULT_TEXT
    ) -> None:
        self._upstreams: dict[str, FakeUpstream] = {}
        for item in upstreams:
            upstream = item if isinstance(item, FakeUpstream) else FakeUpstream(item, text=text)
            if upstream.name in self._upstreams:
                raise ValueError(f"two upstreams are named {upstream.name!r}")
            self._upstreams[upstream.name] = upstream

    async def start(self) -> None:
        """Start every upstream; if one fails to bind, the others are stopped again."""
        results = await asyncio.gather(
            *(u.start() for u in self._upstreams.values()), return_exceptions=True
        )
        errors = [r for r in results if isinstance(r, BaseException)]
        if errors:
            await self.close()
            raise errors[0]

    async def close(self) -> None:
        await asyncio.gather(*(u.close() for u in self._upstreams.values()))

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    def __getitem__(self, name: str) -> FakeUpstream:
        return self._upstreams[name]

    def __iter__(self) -> Iterator[FakeUpstream]:
        return iter(self._upstreams.values())

    def __len__(self) -> int:
        return len(self._upstreams)

    @property
    def names(self) -> list[str]:
        return list(self._upstreams)

    def urls(self) -> dict[str, str]:
        """Each upstream's `base_url`, by name."""
        return {name: u.base_url for name, u in self._upstreams.items()}

    @property
    def attempts(self) -> list[AttemptLog]:
        """Every upstream's attempts in one list, in the order they started."""
        merged = [a for u in self._upstreams.values() for a in u.attempts]
        return sorted(merged, key=lambda a: a.started_at)

    def clear_attempts(self) -> None:
        for upstream in self._upstreams.values():
            upstream.clear_attempts()

    def heal(self) -> None:
        """Every upstream back to healthy."""
        for upstream in self._upstreams.values():
            upstream.heal()
