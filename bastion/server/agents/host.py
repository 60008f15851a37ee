"""The gateway's live agents: built from the config's plans (`bastion.agents.configure`)
over the live router, and the one memory store they share.

`Gateway` plans the agents of a config first (`plan_agents`, which can fail), then
`AgentHost.install` builds them against a router; that cannot fail, so the gateway
calls it right after it swaps the router in, with no await between: a request never
sees a router with the agents of another config.

One store per gateway, opened from `memory.store` when the first agent appears (a
gateway without agents opens none) and closed at shutdown. A reload that changes
`memory.store` keeps the open store and says so: the new URL takes effect at the next
restart, like `server.port`. The other memory settings (`last_n`, `lease_ttl`, `wait`,
`retention`) take effect at once.

The store speaks for this gateway's replica id (`replica_id`), recorded with every lease
and run. Right after opening it the host lets go of what a crashed process of the same id
left behind (`MemoryStore.recover`): its leases, so that the thread it was on is served
at once, and its runs, which read as failed (interrupted) instead of running forever.
A reload that changes `server.replica_id` takes effect at the next restart, too.

With `durability:` in the config (opt-in) the host also launches the durable engine
(`bastion.durable`) under the same replica id, before it opens the store: DBOS resumes
the runs this replica was carrying, and the store's `recover` leaves those runs
running. They start once the agents are installed. `durability:` is read at start-up
only; a reload that changes it takes effect at the next restart.
"""

from __future__ import annotations

import hashlib
import os
import re
import socket
import uuid
from collections.abc import Collection, Mapping
from pathlib import Path
from typing import TYPE_CHECKING

import structlog

from bastion.agents import Agent
from bastion.agents.configure import AgentPlan, open_memory
from bastion.config import ConfigError
from bastion.config.durability_schema import DurabilitySettings
from bastion.config.schema import MemorySettings
from bastion.memory import Memory, MemoryStore, open_store
from bastion.routing import Router

if TYPE_CHECKING:
    from bastion.durable import DurableEngine

_log = structlog.get_logger("bastion.server")

WORKER_INDEX_ENV = "BASTION_WORKER_INDEX"
"""The environment variable that tells a worker of `bastion serve --workers N` its index."""


def replica_id(
    configured: str | None, source: Path | None, port: int, worker: int | None = None
) -> str:
    """The id this gateway process goes by in the memory store: `server.replica_id`, or
    else the host name, the port and the config file — the same again when the same
    gateway restarts — then `/` and the worker index (`worker`, else $BASTION_WORKER_INDEX,
    else 0), so that each worker of one gateway is its own replica. Without a config file
    or a fixed port nothing says which gateway this is: a fresh id, with nothing to
    recover. ConfigError for a worker index that is not a non-negative integer."""
    if worker is None:
        raw = os.environ.get(WORKER_INDEX_ENV, "0")
        try:
            worker = int(raw)
        except ValueError:
            worker = -1
        if worker < 0:
            raise ConfigError(f"{WORKER_INDEX_ENV}: expected a non-negative integer, got {raw!r}")
    host = socket.gethostname()
    if configured is not None:
        base = configured
    elif source is not None and port:
        digest = hashlib.sha256(str(source.resolve()).encode()).hexdigest()[:12]
        base = f"{host}:{port}:{digest}"
    else:
        base = f"{host}:{uuid.uuid4().hex[:12]}"
    return f"{base}/{worker}"


class AgentHost:
    """The live agents by name, and the memory store they share, opened as replica
    `replica` (a fresh id if not given); with `durability`, runs are durable."""

    def __init__(
        self,
        plans: Mapping[str, AgentPlan],
        replica: str | None = None,
        durability: DurabilitySettings | None = None,
    ) -> None:
        self.replica = replica or replica_id(None, None, 0, 0)
        self.durability = durability
        self.engine: DurableEngine | None = None
        self.plans: Mapping[str, AgentPlan] = plans
        self.agents: Mapping[str, Agent] = {}
        self.store: MemoryStore | None = None
        self.memory: Memory | None = None
        self._store_url: str | None = None
        self._settings: MemorySettings | None = None

    def get(self, name: str) -> Agent | None:
        return self.agents.get(name)

    async def prepare(
        self,
        settings: MemorySettings,
        plans: Mapping[str, AgentPlan],
        keep: Collection[str] = (),
    ) -> None:
        """Open the store if agents need one and none is open. Nothing live changes:
        a store open before its agents are installed is merely unused. The runs in
        `keep` (durable runs about to resume) are not marked interrupted."""
        if not plans or self.store is not None:
            if self.store is not None and settings.store != self._store_url:
                _log.warning(
                    "memory.store changed; the open store stays until the next restart",
                    store=_redact(self._store_url or ""),
                )
            return
        try:
            store = await open_store(settings.store, replica_id=self.replica)
        except ValueError as exc:
            raise ConfigError(f"memory.store: {exc}") from None
        try:
            recovered = await store.recover(keep)
        except BaseException:
            await store.close()
            raise
        _log.info("memory store open", store=_redact(settings.store), replica=self.replica)
        if recovered.leases or recovered.runs:
            _log.warning(
                "memory: released what this replica held before it stopped",
                replica=self.replica,
                leases=recovered.leases,
                interrupted_runs=recovered.runs,
            )
        self.store = store
        self._store_url = settings.store

    def install(
        self, plans: Mapping[str, AgentPlan], router: Router, settings: MemorySettings
    ) -> Memory | None:
        """Build the agents of `plans` against `router` and swap them in. Synchronous,
        so that it can follow the router swap with no await between. Returns a `Memory`
        that was replaced, for the caller to `aclose()`."""
        retired: Memory | None = None
        memory = self.memory
        if self.store is not None and (memory is None or settings != self._settings):
            retired, memory = memory, open_memory(self.store, settings)
            self._settings = settings
        self.agents = {name: plan.build(router, memory, self.store) for name, plan in plans.items()}
        for agent in self.agents.values():
            agent.durable = self.engine
        self.plans = plans
        self.memory = memory
        return retired

    async def start(self, settings: MemorySettings, router: Router) -> None:
        keep: Collection[str] = ()
        if self.durability is not None and self.plans:
            self.engine = _launch(self.durability, self.replica)
            keep = await self.engine.pending()
        await self.prepare(settings, self.plans, keep)
        self.install(self.plans, router, settings)
        if self.engine is not None:
            self.engine.open(self.get)

    async def close(self) -> None:
        engine, self.engine = self.engine, None
        if engine is not None:
            # Before the store: runs still in flight stay pending, to resume later.
            await engine.close()
        memory, self.memory = self.memory, None
        store, self.store = self.store, None
        self.agents = {}
        if memory is not None:
            await memory.aclose()
        if store is not None:
            await store.close()


def _launch(settings: DurabilitySettings, replica: str) -> DurableEngine:
    """The durable engine, launched on this event loop; ConfigError if it cannot be."""
    try:
        from bastion.durable import DurableEngine, EngineBusy
    except ImportError:
        raise ConfigError(
            "durability: needs the durable extra (pip install 'bastion[durable]')"
        ) from None
    engine = DurableEngine(settings.database, replica)
    try:
        engine.launch()
    except EngineBusy as exc:
        raise ConfigError(str(exc)) from None
    except Exception as exc:
        raise ConfigError(
            f"durability.database: cannot open {_redact(settings.database)}: {type(exc).__name__}"
        ) from None
    return engine


def _redact(url: str) -> str:
    """A store URL without its password, for a log line."""
    return re.sub(r"//([^:/@]*):[^@/]*@", r"//\1:***@", url)
