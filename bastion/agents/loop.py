"""The agent loop as data: a run's state, the next step it calls for, and how each
step's outcome changes the state — with no I/O, so every rule here is a plain function.

`next_step(state, limits)` reads only the messages so far and the counters; the async
driver (`run.py`) carries the step out and hands the outcome to `apply_model` /
`apply_tools`, which append messages and return the `StepRecord`s. Everything in the
state can be rebuilt from those records (`replay`): a model step's input holds the
messages it saw first (the prompt, or a repair request), its output the assistant
message; a tool step's output holds the tool message. That is what lets a run be
shown, audited and resumed from its steps.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from bastion.agents.errors import AgentError, OutputInvalid, StepLimitReached, ToolArgumentsInvalid
from bastion.agents.output import OutputError, OutputSpec
from bastion.agents.tools import ToolReturn
from bastion.memory.base import StepRecord
from bastion.types import ChatResponse, Message, ToolCall, Usage


@dataclass(frozen=True, slots=True)
class Limits:
    max_steps: int = 10
    max_invalid_tool_rounds: int = 2
    output_repairs: int = 1


@dataclass(slots=True)
class RunState:
    """A run so far. `messages` is the conversation as the model sees it (system
    prompt, history, input, then the run's own messages from `new_start` on);
    `step` is the index of the next step, model and tool steps alike."""

    run_id: str
    messages: list[Message]
    new_start: int
    step: int = 0
    model_steps: int = 0
    tool_calls: int = 0
    invalid_rounds: int = 0
    last_invalid: str = ""
    repairs: int = 0
    usage: Usage = field(default_factory=Usage)
    last_endpoint: str | None = None
    last_model_step: int = -1
    degraded: bool = False
    # messages[:recorded] appear in some step record; the rest go in the next model
    # step's input record.
    recorded: int = 0
    records: list[StepRecord] = field(default_factory=list)

    @property
    def new_messages(self) -> tuple[Message, ...]:
        return tuple(self.messages[self.new_start :])


# --- what comes next --------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class CallModel:
    index: int


@dataclass(frozen=True, slots=True)
class CallTools:
    """Run the calls of model step `model_step`; they become steps `index`, `index+1`..."""

    index: int
    model_step: int
    calls: tuple[ToolCall, ...]


@dataclass(frozen=True, slots=True)
class Finalize:
    """The model answered without tool calls: process and validate the answer."""

    message: Message


@dataclass(frozen=True, slots=True)
class Stop:
    error: AgentError


Next = CallModel | CallTools | Finalize | Stop


def next_step(state: RunState, limits: Limits) -> Next:
    """The step the run calls for, from its messages and counters alone."""
    last = state.messages[-1] if state.messages else None
    # The model's own answer from the step just taken (not an assistant message the
    # caller sent as a prefill).
    if last is not None and last.role == "assistant" and state.last_model_step == state.step - 1:
        if last.tool_calls:
            return CallTools(state.step, state.last_model_step, last.tool_calls)
        return Finalize(last)
    if state.invalid_rounds > limits.max_invalid_tool_rounds:
        return Stop(
            ToolArgumentsInvalid(
                limits.max_invalid_tool_rounds, state.last_invalid, run_id=state.run_id
            )
        )
    if state.model_steps >= limits.max_steps:
        return Stop(
            StepLimitReached(
                limits.max_steps, state.model_steps, state.tool_calls, run_id=state.run_id
            )
        )
    return CallModel(state.step)


@dataclass(frozen=True, slots=True)
class Accept:
    value: Any


@dataclass(frozen=True, slots=True)
class Repair:
    request: Message


def judge_answer(
    state: RunState, text: str, output: OutputSpec | None, limits: Limits
) -> Accept | Repair | Stop:
    """Accept the final answer (parsed, if there is an output schema), ask the model
    to repair it, or give up. A degraded answer is accepted as it is: it was never
    meant to match a schema, and no model is there to repair it."""
    if output is None or state.degraded:
        return Accept(None)
    try:
        return Accept(output.parse(text))
    except OutputError as exc:
        if state.repairs < limits.output_repairs and state.model_steps < limits.max_steps:
            return Repair(OutputSpec.repair_request(exc))
        return Stop(OutputInvalid(str(exc), text, state.repairs, run_id=state.run_id))


def add_repair(state: RunState, request: Message) -> None:
    state.messages.append(request)
    state.repairs += 1


# --- applying outcomes ---------------------------------------------------------------


def apply_model(
    state: RunState,
    response: ChatResponse,
    message: Message,
    name: str,
    started: float,
    refused: str | None = None,
) -> StepRecord:
    """Append the model's message (after output processing, if it is a final answer)
    and record the step. A refused answer is recorded without its text."""
    new_from = state.recorded
    seen = [message_dict(m) for m in state.messages[new_from:]]
    inputs: dict[str, Any] = {"messages": seen}
    if state.model_steps == 0:
        inputs["new_from"] = state.new_start
    state.messages.append(message)
    state.recorded = len(state.messages)
    state.usage = state.usage + response.usage
    state.model_steps += 1
    state.last_model_step = state.step
    state.last_endpoint = response.endpoint
    state.degraded = response.degraded
    usage = response.usage
    output: dict[str, Any] = {
        "message": message_dict(message),
        "finish_reason": response.finish_reason,
        "endpoint": response.endpoint,
        "model": response.model,
        "usage": {
            "prompt_tokens": usage.prompt_tokens,
            "completion_tokens": usage.completion_tokens,
        },
    }
    if len(response.attempts) > 1:
        output["failed_attempts"] = [
            {"endpoint": a.endpoint, "kind": a.kind, "status": a.status}
            for a in response.attempts
            if a.kind is not None
        ]
    if response.degraded:
        output["degraded"] = True
    if refused is not None:
        output["refused"] = refused
    record = StepRecord(
        state.run_id, state.step, "model", name, inputs, output, "ok", started, time.time()
    )
    state.step += 1
    state.records.append(record)
    return record


def model_failure(state: RunState, exc: BaseException, name: str, started: float) -> StepRecord:
    """Record a model step that produced no answer (every target failed)."""
    inputs = {"messages": [message_dict(m) for m in state.messages[state.recorded :]]}
    kind = getattr(exc, "kind", None)
    output = {"error": str(exc), "kind": str(kind) if kind is not None else type(exc).__name__}
    record = StepRecord(
        state.run_id, state.step, "model", name, inputs, output, "error", started, time.time()
    )
    state.step += 1
    state.records.append(record)
    return record


@dataclass(frozen=True, slots=True)
class ToolOutcome:
    call: ToolCall
    key: str
    returned: ToolReturn
    started: float
    ended: float


def apply_tools(
    state: RunState, model_step: int, outcomes: Sequence[ToolOutcome]
) -> list[StepRecord]:
    """Append one tool message per call and record one step per call. A round with
    any invalid arguments counts against `max_invalid_tool_rounds`."""
    records: list[StepRecord] = []
    invalid = False
    for outcome in outcomes:
        call, returned = outcome.call, outcome.returned
        state.messages.append(Message("tool", returned.text, (), call.id, call.name))
        inputs = {
            "call_id": call.id,
            "arguments": call.arguments,
            "idempotency_key": outcome.key,
            "model_step": model_step,
        }
        if returned.error:
            output: dict[str, Any] = {"error": returned.text}
            if returned.invalid:
                output["invalid_arguments"] = True
                invalid = True
                state.last_invalid = returned.text
        else:
            output = {"result": returned.text}
        status: Literal["ok", "error"] = "error" if returned.error else "ok"
        records.append(
            StepRecord(
                state.run_id,
                state.step,
                "tool",
                call.name,
                inputs,
                output,
                status,
                outcome.started,
                outcome.ended,
            )
        )
        state.step += 1
    state.tool_calls += len(outcomes)
    state.invalid_rounds += invalid
    state.recorded = len(state.messages)
    state.records.extend(records)
    return records


def idempotency_key(run_id: str, model_step: int, position: int) -> str:
    return f"{run_id}:{model_step}:{position}"


# --- records <-> messages --------------------------------------------------------------


def message_dict(message: Message) -> dict[str, Any]:
    out: dict[str, Any] = {"role": message.role, "content": message.content}
    if message.tool_calls:
        out["tool_calls"] = [
            {"id": c.id, "name": c.name, "arguments": c.arguments} for c in message.tool_calls
        ]
    if message.tool_call_id is not None:
        out["tool_call_id"] = message.tool_call_id
    if message.name is not None:
        out["name"] = message.name
    return out


def message_from_dict(data: Mapping[str, Any]) -> Message:
    return Message(
        data["role"],
        data.get("content"),
        tuple(ToolCall(c["id"], c["name"], c["arguments"]) for c in data.get("tool_calls", ())),
        data.get("tool_call_id"),
        data.get("name"),
    )


def replay(run_id: str, records: Sequence[StepRecord]) -> RunState:
    """Rebuild a run's state from its step records (in index order): the same
    messages and counters the driver had after the last recorded step."""
    state = RunState(run_id, [], 0)
    invalid_steps: set[int] = set()
    for record in records:
        if record.kind == "model":
            if "new_from" in record.input:
                state.new_start = len(state.messages) + int(record.input["new_from"])
            seen = record.input["messages"]
            if state.model_steps > 0 and any(m["role"] == "user" for m in seen):
                state.repairs += 1
            state.messages.extend(message_from_dict(m) for m in seen)
            if record.status == "ok":
                out = record.output
                state.messages.append(message_from_dict(out["message"]))
                usage = out["usage"]
                state.usage = state.usage + Usage(
                    usage["prompt_tokens"], usage["completion_tokens"]
                )
                state.model_steps += 1
                state.last_model_step = record.index
                state.last_endpoint = out["endpoint"]
                state.degraded = bool(out.get("degraded", False))
        else:
            out = record.output
            text = out["error"] if record.status == "error" else out["result"]
            state.messages.append(Message("tool", text, (), record.input["call_id"], record.name))
            state.tool_calls += 1
            if out.get("invalid_arguments"):
                invalid_steps.add(int(record.input["model_step"]))
                state.last_invalid = text
        state.step = record.index + 1
        state.recorded = len(state.messages)
    state.invalid_rounds = len(invalid_steps)
    state.records = list(records)
    return state
