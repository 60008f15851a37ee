"""The control plane's hook to its sibling workers.

A control-plane write (config PUT, isolate, recover) is applied on the worker that
received it, then handed to `share_config` / `share_isolation`, which apply it on every
worker before the answer goes out. The metrics page and the event stream are widened to
all workers by `metrics_page` and `relay_events`.

`Peers` itself is a gateway of one process: nothing to share, nothing to merge. Under
`bastion serve --workers N` each worker's apps carry a `Siblings` (siblings.py) instead.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from aiohttp import web

from bastion.config import BastionConfig

# What each worker keeps for itself until shared state lands (the status page says so).
PER_WORKER = ("breakers", "health", "outlier_ejection", "rate_limits", "endpoint_counters")
# What every worker has the same of, or sees all of.
SHARED = ("config", "isolation", "metrics", "events")


@dataclass(frozen=True, slots=True)
class Applied:
    """A write applied on `applied` of the gateway's `workers` processes."""

    workers: int
    applied: int

    def headers(self) -> dict[str, str]:
        return {
            "X-Bastion-Workers": str(self.workers),
            "X-Bastion-Workers-Applied": str(self.applied),
        }


class Peers:
    """This worker's place among the gateway's workers, and how to reach the others."""

    def __init__(self, index: int = 0, count: int = 1) -> None:
        self.index = index
        self.count = count

    async def share_config(
        self, text: str, config: BastionConfig, endpoints: Sequence[str]
    ) -> Applied:
        """`config` (parsed from `text`) is live here: make it live on every worker."""
        return Applied(self.count, 1)

    async def share_isolation(self, endpoint: str, isolated: bool) -> Applied:
        """`endpoint` was isolated (or recovered) here: do it on every worker."""
        return Applied(self.count, 1)

    async def metrics_page(self, local: bytes) -> bytes:
        """The metrics page of every worker, from this one's `local` page."""
        return local

    def relay_events(self, push: Callable[[bytes], None]) -> Callable[[], None]:
        """Hand the other workers' events, as SSE frames, to `push` until the function
        returned is called."""
        return _nothing


def _nothing() -> None:
    return None


PEERS: web.AppKey[Peers] = web.AppKey("bastion.peers", Peers)
_ALONE = Peers()


def peers_of(app: web.Application) -> Peers:
    """The app's peers; a gateway of one process when none were set."""
    return app.get(PEERS, _ALONE)
