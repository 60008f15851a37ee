"""The agents API's bodies, read and written at the edge.

A run body (`/generate`, `/stream`, and a WebSocket `generate` message), a `RunRequest`:

    {"prompt": "Where is order 42?"}                      or  "messages": [...]
    {"thread_id": "t1", "resource_id": "user-7",          memory: continue a thread
     "context": {"tier": "gold"}, "run_id": "r-1"}        optional

Messages are OpenAI chat messages, read by the chat-completions parser, so errors name
fields the same way (`messages[0].role`). Unknown fields are refused: this body is
ours, and a typo (`thread`) should not silently start a run without memory.

Answers and events are plain JSON (typed in `bodies`); messages are written back in
the shape they are read in, so a client can send a run's messages on as history.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import dataclass
from typing import Any

from pydantic import TypeAdapter, ValidationError

from bastion.agents import (
    AgentEvent,
    AgentResult,
    Error,
    Finished,
    ModelSwitched,
    StepFinished,
    ToolCallStarted,
    ToolResult,
)
from bastion.memory import RunRecord, StepRecord, Thread
from bastion.server.agents import bodies
from bastion.server.common import header_text, parse_body
from bastion.server.errors import ApiError, invalid
from bastion.server.openai.codec import read_message, tool_call_json, usage_json
from bastion.types import Message, TextDelta

CONTEXT_HEADER = "x-bastion-context-"
_IDENTIFIER: TypeAdapter[str] = TypeAdapter(bodies.Identifier)


@dataclass(frozen=True, slots=True)
class RunBody:
    """A validated run body. `context` is the body's alone (headers merge later)."""

    messages: tuple[Message, ...]
    thread_id: str | None
    resource_id: str | None
    context: Mapping[str, Any]
    run_id: str | None


def identifier(value: Any, field: str, *, required: bool = False) -> str | None:
    """A thread or resource id (`bodies.Identifier`): 1 to 256 printable characters."""
    if value is None and not required:
        return None
    try:
        return _IDENTIFIER.validate_python(value, strict=True)
    except ValidationError:
        raise invalid(field, bodies.ID_RULE) from None


def parse_run(body: Any, *, also: Collection[str] = ()) -> RunBody:
    """Validate a run body (`also`: extra fields the caller reads itself, such as a
    WebSocket message's `type`); ApiError(400) names the first bad field."""
    if isinstance(body, dict) and also:
        body = {key: value for key, value in body.items() if key not in also}
    run = parse_body(bodies.RunRequest, body, noun="a run body")
    if run.prompt is not None and run.messages is not None:
        raise invalid("prompt", "give either prompt or messages, not both")
    if run.prompt is not None:
        messages: tuple[Message, ...] = (Message("user", run.prompt),)
    elif run.messages is not None:
        messages = tuple(read_message(m, i) for i, m in enumerate(run.messages))
    else:
        raise invalid("messages", "is required (a non-empty array), or give a prompt")
    return RunBody(messages, run.thread_id, run.resource_id, run.context or {}, run.run_id)


def header_context(headers: Mapping[str, str]) -> dict[str, str]:
    """`x-bastion-context-user-tier: gold` → `{"user_tier": "gold"}`: the rest of the
    name, lower case, dashes as underscores (proxies drop headers with underscores).
    ApiError(400) naming the header if a value is not valid UTF-8."""
    out: dict[str, str] = {}
    for name, value in headers.items():
        lowered = name.lower()
        if lowered.startswith(CONTEXT_HEADER) and len(lowered) > len(CONTEXT_HEADER):
            out[lowered[len(CONTEXT_HEADER) :].replace("-", "_")] = header_text(lowered, value)
    return out


# --- answers -------------------------------------------------------------------------


def message_body(message: Message) -> dict[str, Any]:
    """A message in OpenAI's shape, as `messages` are read."""
    out: dict[str, Any] = {"role": message.role, "content": message.content}
    if message.tool_calls:
        out["tool_calls"] = [tool_call_json(c) for c in message.tool_calls]
    if message.tool_call_id is not None:
        out["tool_call_id"] = message.tool_call_id
    if message.name is not None:
        out["name"] = message.name
    return out


def step_body(step: StepRecord) -> bodies.Step:
    return {
        "index": step.index,
        "kind": step.kind,
        "name": step.name,
        "status": step.status,
        "input": step.input,
        "output": step.output,
        "started_at": step.started_at,
        "ended_at": step.ended_at,
    }


def result_body(result: AgentResult) -> bodies.AgentResult:
    return {
        "text": result.text,
        "messages": [message_body(m) for m in result.messages],
        "usage": usage_json(result.usage),
        "steps": [step_body(s) for s in result.steps],
        "run_id": result.run_id,
        "output": result.output,
        "refused": result.refused,
        "degraded": result.degraded,
    }


def thread_body(thread: Thread) -> bodies.Thread:
    return {
        "id": thread.id,
        "resource_id": thread.resource_id,
        "version": thread.version,
        "created_at": thread.created_at,
        "updated_at": thread.updated_at,
        "metadata": thread.metadata,
    }


def run_body(run: RunRecord) -> bodies.Run:
    return {
        "id": run.id,
        "agent": run.agent,
        "thread_id": run.thread_id,
        "resource_id": run.resource_id,
        "status": run.status,
        "started_at": run.started_at,
        "ended_at": run.ended_at,
        "error": run.error,
        "steps": [step_body(s) for s in run.steps],
    }


def event_body(event: AgentEvent, error: ApiError | None = None) -> tuple[str, Mapping[str, Any]]:
    """An agent event as (name, fields), typed by `bodies.EVENTS`. An `Error` event's
    fields come from `error`, the answer its exception would have had as a plain HTTP
    error."""
    if isinstance(event, TextDelta):
        return "text_delta", bodies.TextDeltaEvent(text=event.text)
    if isinstance(event, ToolCallStarted):
        call = event.call
        return "tool_call", bodies.ToolCallEvent(
            id=call.id, name=call.name, arguments=call.arguments, step=event.step
        )
    if isinstance(event, ToolResult):
        return "tool_result", bodies.ToolResultEvent(
            call_id=event.call_id,
            name=event.name,
            result=event.result,
            error=event.error,
            step=event.step,
        )
    if isinstance(event, StepFinished):
        return "step_finish", bodies.StepFinishEvent(
            index=event.index,
            kind=event.kind,
            name=event.name,
            status=event.status,
            endpoint=event.endpoint,
            model=event.model,
            usage=usage_json(event.usage),
        )
    if isinstance(event, ModelSwitched):
        return "model_switch", bodies.ModelSwitchEvent(
            from_endpoint=event.from_endpoint, to_endpoint=event.to_endpoint, step=event.step
        )
    if isinstance(event, Finished):
        return "finish", result_body(event.result)
    return "error", error_fields(event, error)


def error_fields(event: Error, error: ApiError | None) -> dict[str, Any]:
    """An `Error` event's fields (`bodies.ErrorEvent` when `error` is given, as the
    handlers always give it)."""
    fields: dict[str, Any] = {"kind": event.kind, "message": event.message}
    if error is not None:
        fields.update(error.body()["error"])
        fields["status"] = error.status
        fields["kind"] = event.kind
    return fields
