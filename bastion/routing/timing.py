"""Time bounds on one attempt: the whole call, the first token, the gaps between chunks."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable
from typing import Generic, TypeVar

from bastion.models.base import Timeouts
from bastion.resilience.errors import UpstreamTimeout

T = TypeVar("T")


async def within(awaitable: Awaitable[T], limit: float, *, phase: str, endpoint: str) -> T:
    """Await with a bound; a miss becomes UpstreamTimeout(phase)."""
    try:
        async with asyncio.timeout(limit):
            return await awaitable
    except TimeoutError as exc:
        if isinstance(exc, UpstreamTimeout):
            raise
        raise UpstreamTimeout(phase, limit, endpoint=endpoint) from exc


class TimedStream(Generic[T]):
    """Reads a provider stream under its attempt's bounds.

    The first event must come within `first_token` of the call (that covers connect and
    headers too: a silent upstream is left then); every later one within `idle` of the
    previous; all of it within `total`, itself cut short by the request's deadline.
    """

    __slots__ = ("_end", "_endpoint", "_first_token", "_idle", "_it", "_loop", "_seen")

    def __init__(
        self, it: AsyncIterator[T], timeouts: Timeouts, *, remaining: float, endpoint: str
    ) -> None:
        self._it = it
        self._loop = asyncio.get_running_loop()
        self._end = self._loop.time() + min(timeouts.total, remaining)
        self._first_token = timeouts.first_token
        self._idle = timeouts.idle
        self._endpoint = endpoint
        self._seen = False

    async def next(self) -> T | None:
        """The next event, or None at the end; UpstreamTimeout on a miss."""
        limit = self._idle if self._seen else self._first_token
        phase = "idle" if self._seen else "first_token"
        left = self._end - self._loop.time()
        if left < limit:
            limit, phase = max(left, 0.0), "total"
        try:
            event = await within(self._it.__anext__(), limit, phase=phase, endpoint=self._endpoint)
        except StopAsyncIteration:
            return None
        self._seen = True
        return event

    async def aclose(self) -> None:
        close = getattr(self._it, "aclose", None)
        if close is not None:
            await close()
