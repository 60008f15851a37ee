"""From the config's `agents:` and `memory:` sections to `Agent` and `Memory` objects.

Beside `bastion.routing.configure` (config → router parts), and like it knows nothing of
who serves the agents. Building happens in two steps, so that a config reload that
cannot work changes nothing: `plan_agents(config)` does everything that can fail —
imports each tool by its "module:function" path, checks names — and raises
`ConfigError` naming the field (`agents.support.tools[1]: ...`); `AgentPlan.build`
then makes the `Agent` against a router, which cannot fail.

Instructions may name runtime-context values as `{key}`: "You help {tier} customers."
A run whose context lacks a `{key}` is refused before it starts (`MissingContext`,
naming the key); `{key|text}` falls back to `text` instead ("{tier|standard}", and
`{key|}` to nothing). `{{key}}` is no placeholder and stays as written. The context
comes from the caller, so whatever a placeholder lets in is the caller's words in the
system prompt.
"""

from __future__ import annotations

import importlib
import re
from dataclasses import dataclass
from typing import Any

import orjson

from bastion.agents import Agent, AgentOptions, MissingContext, Tool
from bastion.agents.options import Instructions
from bastion.agents.tools import as_tool
from bastion.config import BastionConfig, ConfigError
from bastion.config.schema import AgentConfig, MemorySettings
from bastion.memory import Memory, MemoryStore
from bastion.routing import Router, Target
from bastion.routing.spec import ModelSpec
from bastion.types import RuntimeContext

# `{key}` or `{key|default}`; not inside doubled braces (`{{key}}` is left as written).
_PLACEHOLDER = re.compile(r"(?<!\{)\{([A-Za-z_][A-Za-z0-9_]*)(?:\|([^{}]*))?\}(?!\})")


class ContextTemplate:
    """Instructions with `{key}` and `{key|default}` placeholders filled from the
    runtime context (text as is, anything else as JSON). A `{key}` the context lacks
    is `MissingContext` (`missing_context` tells before the run starts)."""

    __slots__ = ("_required", "text")

    def __init__(self, text: str) -> None:
        self.text = text
        self._required = tuple(
            dict.fromkeys(m.group(1) for m in _PLACEHOLDER.finditer(text) if m.group(2) is None)
        )

    def missing_context(self, context: RuntimeContext) -> tuple[str, ...]:
        """The keys of placeholders without a default that `context` does not have."""
        return tuple(key for key in self._required if key not in context)

    def __call__(self, context: RuntimeContext) -> str:
        missing = self.missing_context(context)
        if missing:
            raise MissingContext(missing)

        def fill(match: re.Match[str]) -> str:
            key, default = match.group(1), match.group(2)
            if key not in context:
                return str(default)  # a key without a default was refused above
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


def model_spec(model: str | tuple[str | Target, ...]) -> ModelSpec:
    """The config's model as the router takes it: a name, or a fallback list of
    `Target`s carrying their own retry counts."""
    return model if isinstance(model, str) else list(model)


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


def open_memory(store: MemoryStore, settings: MemorySettings) -> Memory:
    """The agents' `Memory` over `store` with the `memory:` settings, its retention
    sweep (when `retention` is set) started."""
    memory = Memory(
        store,
        last_n=settings.last_n,
        lease_ttl=settings.lease_ttl,
        wait=settings.wait,
        retention=settings.retention,
    )
    memory.start()
    return memory
