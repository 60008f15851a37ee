"""What an agent run produces: its result, and the events of `Agent.stream`.

A stream is, in order: per model step, `ModelSwitched` (only when the serving endpoint
differs from the previous model step's), the step's `TextDelta`s and a `StepFinished`;
per tool call, `ToolCallStarted`, `ToolResult` and a `StepFinished`; and last either
`Finished(result)` or `Error(kind, message)`. `TextDelta` is `bastion.types.TextDelta`,
passed through from the router without a copy.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, TypeAlias

from bastion.memory.base import StepRecord
from bastion.types import Message, TextDelta, ToolCall, Usage


@dataclass(frozen=True, slots=True)
class AgentResult:
    """The outcome of a run.

    `messages` are the run's new messages (the input after processing, the assistant's
    tool calls, the tool results, the final answer — and, if the output was repaired,
    the rejected answer and the repair request): what memory commits. `steps` are
    the step records, model and tool calls in order. `output` is the validated
    structured answer when the agent has an output schema. `refused` is the reason a
    processor gave for refusing (then `text` is empty). `degraded` tells that the final
    answer is a model group's degraded answer, not a model's.
    """

    text: str
    messages: tuple[Message, ...]
    usage: Usage
    steps: tuple[StepRecord, ...]
    run_id: str
    output: Any = None
    refused: str | None = None
    degraded: bool = False

    @property
    def endpoints(self) -> tuple[str, ...]:
        """The endpoint that served each model step, in order."""
        return tuple(s.output.get("endpoint", "") for s in self.steps if s.kind == "model")

    @property
    def models(self) -> tuple[str, ...]:
        """The model that served each model step, in order."""
        return tuple(s.output.get("model", "") for s in self.steps if s.kind == "model")


@dataclass(frozen=True, slots=True)
class ToolCallStarted:
    call: ToolCall
    step: int


@dataclass(frozen=True, slots=True)
class ToolResult:
    """A tool call's outcome: `result` on success, `error` (the text the model was
    sent) otherwise."""

    call_id: str
    name: str
    result: str | None
    error: str | None
    step: int


@dataclass(frozen=True, slots=True)
class StepFinished:
    """A step is done. Tool steps have no endpoint, model or usage."""

    index: int
    kind: Literal["model", "tool"]
    name: str
    status: Literal["ok", "error"]
    endpoint: str = ""
    model: str = ""
    usage: Usage = field(default_factory=Usage)


@dataclass(frozen=True, slots=True)
class ModelSwitched:
    """Model step `step` is served by another endpoint than the previous model step:
    the run failed over (or the selector chose differently) and carries on there."""

    from_endpoint: str
    to_endpoint: str
    step: int


@dataclass(frozen=True, slots=True)
class Finished:
    result: AgentResult


@dataclass(frozen=True, slots=True)
class Error:
    """The run failed; nothing follows. `kind` is an `ErrorKind` value for router
    failures or an `AgentError.kind` ("step_limit", "output_invalid", ...)."""

    kind: str
    message: str
    exception: BaseException | None = field(default=None, repr=False, compare=False)


AgentEvent: TypeAlias = (
    TextDelta | ToolCallStarted | ToolResult | StepFinished | ModelSwitched | Finished | Error
)


def refused_result(
    run_id: str, reason: str, messages: Sequence[Message], steps: Sequence[StepRecord], usage: Usage
) -> AgentResult:
    return AgentResult("", tuple(messages), usage, tuple(steps), run_id, refused=reason)
