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
"""

from __future__ import annotations

import re
from collections.abc import Mapping

import structlog

from bastion.agents import Agent
from bastion.agents.configure import AgentPlan, open_memory
from bastion.config import ConfigError
from bastion.config.schema import MemorySettings
from bastion.memory import Memory, MemoryStore, open_store
from bastion.routing import Router

_log = structlog.get_logger("bastion.server")


class AgentHost:
    """The live agents by name, and the memory store they share."""

    def __init__(self, plans: Mapping[str, AgentPlan]) -> None:
        self.plans: Mapping[str, AgentPlan] = plans
        self.agents: Mapping[str, Agent] = {}
        self.store: MemoryStore | None = None
        self.memory: Memory | None = None
        self._store_url: str | None = None
        self._settings: MemorySettings | None = None

    def get(self, name: str) -> Agent | None:
        return self.agents.get(name)

    async def prepare(self, settings: MemorySettings, plans: Mapping[str, AgentPlan]) -> None:
        """Open the store if agents need one and none is open. Nothing live changes:
        a store open before its agents are installed is merely unused."""
        if not plans or self.store is not None:
            if self.store is not None and settings.store != self._store_url:
                _log.warning(
                    "memory.store changed; the open store stays until the next restart",
                    store=_redact(self._store_url or ""),
                )
            return
        try:
            self.store = await open_store(settings.store)
        except ValueError as exc:
            raise ConfigError(f"memory.store: {exc}") from None
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
        self.plans = plans
        self.memory = memory
        return retired

    async def start(self, settings: MemorySettings, router: Router) -> None:
        await self.prepare(settings, self.plans)
        self.install(self.plans, router, settings)

    async def close(self) -> None:
        memory, self.memory = self.memory, None
        store, self.store = self.store, None
        self.agents = {}
        if memory is not None:
            await memory.aclose()
        if store is not None:
            await store.close()


def _redact(url: str) -> str:
    """A store URL without its password, for a log line."""
    return re.sub(r"//([^:/@]*):[^@/]*@", r"//\1:***@", url)
