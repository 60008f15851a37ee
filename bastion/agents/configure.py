"""The gateway's agents: built from the `agents:` section, over the live router and one
memory store.

Building happens in two steps, so that a config reload that cannot work changes
nothing. `plan_agents(config)` does everything that can fail — imports each tool by its
"module:function" path, checks names — and raises `ConfigError` naming the field
(`agents.support.tools[1]: ...`). `AgentHost.install` then makes `Agent` objects of the
plan against a router; that cannot fail, so the gateway calls it right after it swaps
the router in, with no await between: a request never sees a router with the agents of
another config.

One store per gateway, opened from `memory.store` when the first agent appears (a
gateway without agents opens none) and closed at shutdown. A reload that changes
`memory.store` keeps the open store and says so: the new URL takes effect at the next
restart, like `server.port`. The other memory settings (`last_n`, `lease_ttl`, `wait`,
`retention`) take effect at once.

Instructions may name runtime-context values as `{key}`: "You help {tier} customers."
A placeholder is filled when the request's context has the key and left as written
otherwise. The context comes from the caller, so whatever a placeholder lets in is
the caller's words in the system prompt.
"""

from __future__ import annotations

import importlib
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import orjson
import structlog

from bastion.agents import Agent, AgentOptions, Tool
from bastion.agents.options import Instructions
from bastion.agents.tools import as_tool
from bastion.config import BastionConfig, ConfigError
from bastion.config.schema import AgentConfig, MemorySettings, TargetConfig
from bastion.memory import Memory, MemoryStore, open_store
from bastion.routing import Router, Target
from bastion.routing.spec import ModelSpec
from bastion.types import RuntimeContext

_log = structlog.get_logger("bastion.server")

_PLACEHOLDER = re.compile(r"\{([A-Za-z_][A-Za-z0-9_]*)\}")


class ContextTemplate:
    """Instructions with `{key}` placeholders filled from the runtime context."""

    __slots__ = ("text",)

    def __init__(self, text: str) -> None:
        self.text = text

    def __call__(self, context: RuntimeContext) -> str:
        def fill(match: re.Match[str]) -> str:
            key = match.group(1)
            if key not in context:
                return match.group(0)
            value = context[key]
            return value if isinstance(value, str) else orjson.dumps(value).decode()

        return _PLACEHOLDER.sub(fill, self.text)

    def __repr__(self) -> str:
        return f"ContextTemplate({self.text!r})"


def instructions_of(text: str) -> Instructions:
    """The text itself when it has no placeholder, else a template of it."""
    return ContextTemplate(text) if _PLACEHOLDER.search(text) else text


@dataclass(frozen=True, slots=True)
class AgentPlan:
    """One agent of a config, with its tools imported: everything but the router."""

    name: str
    config: AgentConfig
    model: ModelSpec
    tools: tuple[Tool, ...]

    def build(self, router: Router, memory: Memory | None, store: MemoryStore | None) -> Agent:
        config = self.config
        return Agent(
            self.name,
            instructions_of(config.instructions),
            self.model,
            router=router,
            tools=self.tools,
            memory=memory if config.memory else None,
            description=config.description,
            # Runs are recorded for agents without memory too: GET /api/v1/runs/{id}.
            options=AgentOptions(max_steps=config.max_steps, run_store=store),
        )


def load_tool(path: str, where: str) -> Tool:
    """The tool a "package.module:function" path names: a `@tool`, or a plain typed
    function made into one. `ConfigError` naming `where` otherwise."""
    module_name, _, attr = path.partition(":")
    try:
        target: Any = importlib.import_module(module_name)
        for part in attr.split("."):
            target = getattr(target, part)
    except Exception as exc:  # an import runs the module: anything can go wrong
        raise ConfigError(f"{where}: cannot import {path!r}: {type(exc).__name__}: {exc}") from None
    if isinstance(target, Tool):
        return target
    if not callable(target) or isinstance(target, type):
        raise ConfigError(f"{where}: {path!r} is not a function or a @tool")
    try:
        return as_tool(target)
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"{where}: {path!r} cannot be a tool: {exc}") from None


def model_spec(model: str | tuple[str | TargetConfig, ...]) -> ModelSpec:
    """The config's model as the router takes it: a name, or a fallback list of
    `Target`s carrying their own retry counts."""
    if isinstance(model, str):
        return model
    return [e if isinstance(e, str) else Target(e.model, e.retries) for e in model]


def plan_agents(config: BastionConfig) -> dict[str, AgentPlan]:
    """Import every agent's tools and check them; `ConfigError` naming the field."""
    plans: dict[str, AgentPlan] = {}
    for name, agent in config.agents.items():
        tools: list[Tool] = []
        seen: set[str] = set()
        for index, path in enumerate(agent.tools):
            where = f"agents.{name}.tools[{index}]"
            loaded = load_tool(path, where)
            if loaded.name in seen:
                raise ConfigError(f"{where}: a second tool named {loaded.name!r}")
            seen.add(loaded.name)
            tools.append(loaded)
        plans[name] = AgentPlan(name, agent, model_spec(agent.model), tuple(tools))
    return plans


def _memory(store: MemoryStore, settings: MemorySettings) -> Memory:
    memory = Memory(
        store,
        last_n=settings.last_n,
        lease_ttl=settings.lease_ttl,
        wait=settings.wait,
        retention=settings.retention,
    )
    memory.start()  # the retention sweep, when `retention` is set
    return memory


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
            retired, memory = memory, _memory(self.store, settings)
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
