"""The thin async driver of an agent run: it asks `loop.next_step` what to do, does it
(a model call through the Router, tool calls, validation), records each step, and
yields the stream events. `Agent.generate` and `Agent.stream` both drive this one
loop; only the model call differs (`router.complete` or `router.stream`).

Memory: with a thread, the run happens inside `memory.turn(thread, resource)`; the
history comes first in the prompt, and the run's new messages are committed at the
end in one append — only when the run succeeded. A refused or failed run commits
nothing: the thread never ends on a question without its answer, and refused input
(a blocked prompt, a leaked secret) is not stored. The run store keeps the record of
what happened to such runs.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import time
from collections.abc import AsyncGenerator, Awaitable, Mapping, Sequence
from contextlib import aclosing
from dataclasses import dataclass

from bastion.agents.events import (
    AgentEvent,
    AgentResult,
    Finished,
    ModelSwitched,
    StepFinished,
    ToolCallStarted,
    ToolResult,
    refused_result,
)
from bastion.agents.journal import DIRECT, StepJournal
from bastion.agents.loop import (
    Accept,
    CallModel,
    CallTools,
    Finalize,
    Limits,
    Repair,
    RunState,
    ToolOutcome,
    add_repair,
    apply_model,
    apply_tools,
    idempotency_key,
    judge_answer,
    model_failure,
    next_step,
)
from bastion.agents.options import AgentMemory, AgentOptions, Instructions, RunStore
from bastion.agents.output import OutputSpec
from bastion.agents.processors import Refusal, run_processors
from bastion.agents.streamed import StreamedStep
from bastion.agents.tools import Tool, ToolContext, ToolReturn
from bastion.memory.base import RunRecord, StepRecord
from bastion.routing.router import Router
from bastion.routing.spec import ModelSpec
from bastion.types import (
    ChatRequest,
    Message,
    RuntimeContext,
    TextDelta,
    ToolCall,
    ToolSpec,
    Usage,
)

Events = AsyncGenerator[AgentEvent, None]


@dataclass(frozen=True, slots=True)
class AgentSetup:
    """What every run of one agent shares, computed once when the agent is built."""

    name: str
    router: Router
    model: ModelSpec
    model_name: str
    instructions: Instructions
    tools: Mapping[str, Tool]
    tool_specs: tuple[ToolSpec, ...]
    options: AgentOptions
    limits: Limits
    output: OutputSpec | None
    memory: AgentMemory | None
    run_store: RunStore | None


class AgentRun:
    """One run. Iterate `events()` once; `result` is set when it finished."""

    __slots__ = (
        "_held",
        "context",
        "input",
        "journal",
        "resource_id",
        "result",
        "run_id",
        "setup",
        "streaming",
        "thread_id",
    )

    def __init__(
        self,
        setup: AgentSetup,
        messages: Sequence[Message],
        context: RuntimeContext,
        run_id: str,
        thread_id: str | None,
        resource_id: str | None,
        *,
        streaming: bool,
        journal: StepJournal = DIRECT,
    ) -> None:
        self.setup = setup
        self.journal = journal
        self.input = messages
        self.context = context
        self.run_id = run_id
        self.thread_id = thread_id
        self.resource_id = resource_id
        self.streaming = streaming
        self.result: AgentResult | None = None
        # With output processors, streamed text is held until its step ends, so that
        # no unprocessed final answer reaches the caller.
        self._held = streaming and bool(setup.options.output_processors)

    async def events(self) -> Events:
        setup = self.setup
        store = setup.run_store
        if store is not None:
            await store.start_run(
                RunRecord(
                    self.run_id,
                    setup.name,
                    self.thread_id,
                    self.resource_id,
                    "running",
                    time.time(),
                    None,
                )
            )
        try:
            memory = setup.memory
            if memory is not None and self.thread_id is not None:
                async with memory.turn(self.thread_id, self.resource_id or "") as turn:
                    async with aclosing(self._loop(turn.history)) as events:
                        async for event in events:
                            yield event
                    result = self.final()
                    if result.refused is None:
                        await turn.commit(result.messages)
            else:
                async with aclosing(self._loop(())) as events:
                    async for event in events:
                        yield event
            result = self.final()
        except Exception as exc:
            if store is not None:
                await store.finish_run(self.run_id, "error", f"{type(exc).__name__}: {exc}")
            raise
        except BaseException:
            if store is not None:
                # Cancelled, or the caller stopped reading the stream.
                await _quietly(store.finish_run(self.run_id, "error", "cancelled"))
            raise
        if store is not None:
            note = f"refused: {result.refused}" if result.refused is not None else None
            await store.finish_run(self.run_id, "ok", note)
        yield Finished(result)

    def final(self) -> AgentResult:
        """The result of a finished run."""
        if self.result is None:  # pragma: no cover - the loop always sets it or raises
            raise RuntimeError("the run ended without a result")
        return self.result

    async def _loop(self, history: Sequence[Message]) -> Events:
        setup = self.setup
        system_text = await _instructions(setup.instructions, self.context)
        if setup.output is not None:
            extra = setup.output.instructions
            system_text = f"{system_text}\n\n{extra}" if system_text else extra
        inputs = self.input
        if setup.options.input_processors:
            processed = await run_processors(setup.options.input_processors, inputs, self.context)
            if isinstance(processed, Refusal):
                self.result = refused_result(self.run_id, processed.reason, (), (), Usage())
                return
            inputs = processed
        messages = [Message("system", system_text)] if system_text else []
        messages.extend(history)
        state = RunState(self.run_id, messages, len(messages))
        messages.extend(inputs)
        limits = setup.limits
        while True:
            step = next_step(state, limits)
            if isinstance(step, CallModel):
                async with aclosing(self._model_step(state)) as events:
                    async for event in events:
                        yield event
                if self.result is not None:  # the answer was refused
                    return
            elif isinstance(step, CallTools):
                async with aclosing(self._tool_step(state, step)) as events:
                    async for event in events:
                        yield event
            elif isinstance(step, Finalize):
                text = step.message.content or ""
                verdict = judge_answer(state, text, setup.output, limits)
                if isinstance(verdict, Accept):
                    if self._held and text:
                        yield TextDelta(text)
                    self.result = AgentResult(
                        text,
                        state.new_messages,
                        state.usage,
                        tuple(state.records),
                        self.run_id,
                        verdict.value,
                        None,
                        state.degraded,
                    )
                    return
                if isinstance(verdict, Repair):
                    add_repair(state, verdict.request)
                    continue
                raise verdict.error
            else:
                raise step.error

    async def _model_step(self, state: RunState) -> Events:
        setup = self.setup
        opts = setup.options
        index = state.step
        previous = state.last_endpoint
        request = ChatRequest(
            tuple(state.messages), setup.tool_specs, None, opts.temperature, opts.max_tokens
        )
        started = time.time()
        held = ""
        try:
            if not self.streaming:
                response = await self.journal.step(
                    f"model:{index}",
                    lambda: setup.router.complete(request, model=setup.model, context=self.context),
                )
                if previous is not None and response.endpoint != previous:
                    yield ModelSwitched(previous, response.endpoint, index)
            else:
                stream = setup.router.stream(request, model=setup.model, context=self.context)
                step = StreamedStep(stream, previous, index, self._held)
                async with aclosing(step.events()) as events:
                    async for event in events:
                        yield event
                if step.response is None:  # pragma: no cover - events() sets it or raises
                    raise RuntimeError("the model step ended without a response")
                response = step.response
                if self._held and response.message.tool_calls:
                    held = response.text
        except Exception as exc:
            await self._record(model_failure(state, exc, setup.model_name, started))
            raise
        message = response.message
        refused: str | None = None
        if not message.tool_calls and opts.output_processors:
            processed = await run_processors(opts.output_processors, (message,), self.context)
            if isinstance(processed, Refusal):
                refused = processed.reason
                message = Message("assistant", None)
            else:
                message = processed[-1] if processed else Message("assistant", None)
        record = apply_model(state, response, message, setup.model_name, started, refused)
        await self._record(record)
        if held:
            yield TextDelta(held)
        yield StepFinished(
            index,
            "model",
            setup.model_name,
            "ok",
            response.endpoint,
            response.model,
            response.usage,
        )
        if refused is not None:
            done = state.messages[state.new_start : -1]
            self.result = refused_result(self.run_id, refused, done, state.records, state.usage)

    async def _tool_step(self, state: RunState, step: CallTools) -> Events:
        calls = step.calls
        for position, call in enumerate(calls):
            yield ToolCallStarted(call, step.index + position)
        if len(calls) == 1:
            outcomes: Sequence[ToolOutcome] = (await self._call(step, 0, calls[0]),)
        else:
            outcomes = await asyncio.gather(
                *(self._call(step, position, call) for position, call in enumerate(calls))
            )
        records = apply_tools(state, step.model_step, outcomes)
        for record, outcome in zip(records, outcomes, strict=True):
            await self._record(record)
            returned = outcome.returned
            call = outcome.call
            if returned.error:
                yield ToolResult(call.id, call.name, None, returned.text, record.index)
            else:
                yield ToolResult(call.id, call.name, returned.text, None, record.index)
            yield StepFinished(record.index, "tool", call.name, record.status)

    async def _call(self, step: CallTools, position: int, call: ToolCall) -> ToolOutcome:
        setup = self.setup
        key = idempotency_key(self.run_id, step.model_step, position)
        started = time.time()
        tool = setup.tools.get(call.name)
        if tool is None:
            known = ", ".join(setup.tools) or "none"
            text = f"unknown tool '{call.name}'; the available tools are: {known}"
            returned = ToolReturn(text, True, True)
        else:
            ctx = ToolContext(
                self.run_id,
                step.index + position,
                call.id,
                call.name,
                key,
                self.context,
                setup.name,
                self.thread_id,
                self.resource_id,
            )
            returned = await self.journal.step(
                f"tool:{call.name}", lambda: tool.execute(call.arguments, ctx)
            )
        return ToolOutcome(call, key, returned, started, time.time())

    async def _record(self, record: StepRecord) -> None:
        store = self.setup.run_store
        if store is not None:
            await store.record_step(record)


async def _instructions(instructions: Instructions, context: RuntimeContext) -> str:
    if isinstance(instructions, str):
        return instructions
    produced = instructions(context)
    if inspect.isawaitable(produced):
        produced = await produced
    return produced


async def _quietly(awaitable: Awaitable[None]) -> None:
    # The run is ending anyway; a lost "cancelled" note does no harm.
    with contextlib.suppress(Exception):
        await awaitable
