"""The Agent: instructions, a model spec, tools and memory, with failover built in.

    agent = Agent(
        "support",
        instructions=lambda ctx: f"You help {ctx['tier']} customers.",
        model=router,                     # a Router (its default model), or one model
        tools=[lookup_order],
    )
    result = await agent.generate("Where is order 42?", context={"tier": "gold"})
    async for event in agent.stream("Where is order 42?"):
        ...

`model` may also be a spec — a group or endpoint name, a fallback list such as
`[{"model": "primary", "retries": 0}, "fallback"]`, a function of the context — given
with the `router=` that resolves it. The model spec is resolved by the router on every
model step, so when the primary
fails between tool steps the fallback carries on with the whole conversation — the
tool calls and their results included.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncGenerator, Callable, Iterable, Mapping, Sequence
from contextlib import aclosing
from typing import Any

from bastion.agents.errors import MissingContext
from bastion.agents.events import AgentEvent, AgentResult, Error
from bastion.agents.journal import DIRECT, DurableRuns, StepJournal
from bastion.agents.loop import Limits
from bastion.agents.options import (
    AgentMemory,
    AgentOptions,
    ContextNeeds,
    Instructions,
    RunStore,
)
from bastion.agents.output import OutputSpec
from bastion.agents.run import AgentRun, AgentSetup
from bastion.agents.tools import Tool, as_tool
from bastion.models.base import ChatModel
from bastion.routing.groups import Target
from bastion.routing.router import Router
from bastion.routing.spec import ModelSpec
from bastion.types import Message, RuntimeContext

AgentInput = str | Message | Sequence[Message | str]

_NO_CONTEXT = RuntimeContext()


class Agent:
    """A model that uses tools in a loop until it answers; see the module docstring.

    `instructions` is the system prompt, or a function of the `RuntimeContext` (sync
    or async) that returns it. `model` is a `Router` (it answers with its default
    model), a single `ChatModel` (wrapped in a router of one), or any spec a `router=`
    accepts: a group or endpoint name, a fallback list, or a function of the context.
    `tools` are `Tool`s
    or plain typed functions. With `memory`, runs given a `thread_id` continue that
    thread. Everything else is in `options`.
    """

    def __init__(
        self,
        name: str,
        instructions: Instructions,
        model: ModelSpec | Router | ChatModel,
        *,
        router: Router | None = None,
        tools: Iterable[Tool | Callable[..., Any]] = (),
        memory: AgentMemory | None = None,
        description: str = "",
        options: AgentOptions | None = None,
    ) -> None:
        options = options or AgentOptions()
        router, model = _bind(name, model, router)
        built: dict[str, Tool] = {}
        for item in tools:
            t = as_tool(item)
            if t.name in built:
                raise ValueError(f"agent {name!r}: two tools are named {t.name!r}")
            built[t.name] = t
        self.name = name
        self.description = description
        self.options = options
        self.memory = memory
        self.durable: DurableRuns | None = None
        run_store = options.run_store
        if run_store is None and memory is not None:
            store = getattr(memory, "store", None)
            run_store = store if isinstance(store, RunStore) else None
        self._setup = AgentSetup(
            name=name,
            router=router,
            model=model,
            model_name=_spec_name(model),
            instructions=instructions,
            tools=built,
            tool_specs=tuple(t.spec for t in built.values()),
            options=options,
            limits=Limits(
                options.max_steps, options.max_invalid_tool_rounds, options.output_repairs
            ),
            output=OutputSpec(options.output) if options.output is not None else None,
            memory=memory,
            run_store=run_store,
        )

    @property
    def tools(self) -> Mapping[str, Tool]:
        return self._setup.tools

    @property
    def router(self) -> Router:
        return self._setup.router

    def __repr__(self) -> str:
        return f"Agent({self.name!r}, model={self._setup.model_name!r})"

    async def generate(
        self,
        prompt: AgentInput,
        *,
        thread_id: str | None = None,
        resource_id: str | None = None,
        context: RuntimeContext | Mapping[str, Any] | None = None,
        run_id: str | None = None,
    ) -> AgentResult:
        """Run to the end and return the result. Raises `MissingContext` (before
        anything runs), `StepLimitReached`, `ToolArgumentsInvalid`, `OutputInvalid`, or
        the router's `FailoverError` when no model could answer; a processor's refusal
        is a result, not an error.

        With memory, `thread_id` (and the `resource_id` that owns the thread) makes
        the run a turn on that thread: its history is prepended and, if the run
        succeeds, its new messages are committed (a refused or failed run commits
        nothing). Without memory, `thread_id` is only recorded. `run_id` defaults to
        a new UUID; it names the run in the run store and in idempotency keys.

        With `durable` set (a gateway with `durability:` in its config), the run is a
        durable workflow named by the run id: its steps are recorded as they finish,
        and a process that dies mid-run resumes it on restart (`bastion.durable`)."""
        run = self._run(prompt, thread_id, resource_id, context, run_id, streaming=False)
        if self.durable is not None:
            return await self.durable.generate(
                self, run.input, dict(run.context), run.run_id, thread_id, resource_id
            )
        return await drive(run)

    def resume(
        self,
        messages: Sequence[Message],
        context: Mapping[str, Any],
        run_id: str,
        thread_id: str | None,
        resource_id: str | None,
        journal: StepJournal = DIRECT,
    ) -> AgentRun:
        """A run from inputs recorded earlier, taking its steps through `journal`: how
        a durable engine starts (or resumes) the run it recorded. `drive` runs it."""
        return AgentRun(
            self._setup,
            tuple(messages),
            RuntimeContext(context),
            run_id,
            thread_id,
            resource_id,
            streaming=False,
            journal=journal,
        )

    async def stream(
        self,
        prompt: AgentInput,
        *,
        thread_id: str | None = None,
        resource_id: str | None = None,
        context: RuntimeContext | Mapping[str, Any] | None = None,
        run_id: str | None = None,
    ) -> AsyncGenerator[AgentEvent, None]:
        """The run as events (see `bastion.agents.events`), ending in `Finished` or
        `Error` — errors are in-band here, never raised. A caller that stops early
        should `aclose()` the iterator so that the thread's turn is released at once."""
        try:
            run = self._run(prompt, thread_id, resource_id, context, run_id, streaming=True)
            async with aclosing(run.events()) as events:
                async for event in events:
                    yield event
        except Exception as exc:
            kind = getattr(exc, "kind", None)
            yield Error(str(kind) if kind is not None else "error", str(exc), exc)

    def check_context(self, context: RuntimeContext | Mapping[str, Any] | None) -> RuntimeContext:
        """The context as a `RuntimeContext`, if it has every value the instructions
        need (instructions that say so: `ContextNeeds`); else `MissingContext`. Every
        run checks this before it starts; a server can ask first, to refuse early."""
        if context is None:
            ctx = _NO_CONTEXT
        elif isinstance(context, RuntimeContext):
            ctx = context
        else:
            ctx = RuntimeContext(context)
        instructions = self._setup.instructions
        if isinstance(instructions, ContextNeeds):
            missing = instructions.missing_context(ctx)
            if missing:
                raise MissingContext(missing, agent=self.name)
        return ctx

    def _run(
        self,
        prompt: AgentInput,
        thread_id: str | None,
        resource_id: str | None,
        context: RuntimeContext | Mapping[str, Any] | None,
        run_id: str | None,
        *,
        streaming: bool,
    ) -> AgentRun:
        if thread_id is not None and self.memory is not None and not resource_id:
            raise ValueError("a run on a memory thread needs the resource_id that owns it")
        ctx = self.check_context(context)
        return AgentRun(
            self._setup,
            _messages(prompt),
            ctx,
            run_id or uuid.uuid4().hex,
            thread_id,
            resource_id,
            streaming=streaming,
        )


async def drive(run: AgentRun) -> AgentResult:
    """Run `run` to the end and return its result."""
    async for _ in run.events():
        pass
    return run.final()


def _messages(prompt: AgentInput) -> tuple[Message, ...]:
    if isinstance(prompt, str):
        return (Message("user", prompt),)
    if isinstance(prompt, Message):
        return (prompt,)
    messages = tuple(Message("user", m) if isinstance(m, str) else m for m in prompt)
    if not messages:
        raise ValueError("an agent run needs at least one message")
    return messages


def _spec_name(spec: ModelSpec) -> str:
    """A name for the spec in step records (which endpoint served is recorded too)."""
    if isinstance(spec, str):
        return spec
    if isinstance(spec, Target):
        return spec.endpoint
    if callable(spec):
        return getattr(spec, "__name__", "dynamic")
    parts: list[str] = []
    for entry in spec:
        if isinstance(entry, str):
            parts.append(entry)
        elif isinstance(entry, Target):
            parts.append(entry.endpoint)
        else:
            parts.append(str(entry.get("model", entry.get("endpoint", "?"))))
    return "+".join(parts)


def _bind(
    name: str, model: ModelSpec | Router | ChatModel, router: Router | None
) -> tuple[Router, ModelSpec]:
    """The router and the spec an agent asks it for."""
    if isinstance(model, Router):
        if router is not None and router is not model:
            raise ValueError(f"agent {name!r}: give the router as model= or router=, not both")
        if model.default_model is None:
            raise ValueError(
                f"agent {name!r}: the router has no default_model; pass model= a spec with router="
            )
        return model, model.default_model
    if isinstance(model, ChatModel):
        if router is not None:
            raise ValueError(f"agent {name!r}: router= goes with a model spec, not a model")
        single = Router.single(model)
        assert single.default_model is not None
        return single, single.default_model
    if router is None:
        raise ValueError(
            f"agent {name!r}: model={_spec_name(model)!r} is a spec; give router= to resolve "
            "it, or pass a Router or a model as model="
        )
    return router, model
