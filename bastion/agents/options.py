"""An agent's options, and the two seams it is given: memory and a run store."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping, Sequence
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from typing import Any, Literal, Protocol, TypeAlias, runtime_checkable

from bastion.agents.processors import Processor
from bastion.memory.base import RunRecord, StepRecord
from bastion.types import Message, RuntimeContext

Instructions: TypeAlias = str | Callable[[RuntimeContext], str | Awaitable[str]]


@runtime_checkable
class ContextNeeds(Protocol):
    """Instructions that can tell, before a run starts, which runtime-context values
    they need and the context lacks (`bastion.agents.configure.ContextTemplate` does)."""

    def missing_context(self, context: RuntimeContext) -> tuple[str, ...]: ...


@dataclass(frozen=True, slots=True)
class AgentOptions:
    """Everything about an agent beyond who it is, what model and which tools.

    - `max_steps`: model calls per run; reaching it without a final answer raises
      `StepLimitReached`.
    - `output`: a pydantic model class (or any type pydantic validates) or a JSON-schema
      dict; the final answer is parsed into `AgentResult.output`, with
      `output_repairs` attempts to have the model correct it, then `OutputInvalid`.
    - `input_processors` / `output_processors`: see `bastion.agents.processors`.
    - `max_invalid_tool_rounds`: model steps whose tool arguments did not validate that
      are sent back for correction; one more raises `ToolArgumentsInvalid`.
    - `run_store`: where run steps are recorded; defaults to the memory's store.
    - `temperature`, `max_tokens`: passed on every model step.
    """

    max_steps: int = 10
    output: type[Any] | Mapping[str, Any] | None = None
    input_processors: Sequence[Processor] = ()
    output_processors: Sequence[Processor] = ()
    max_invalid_tool_rounds: int = 2
    output_repairs: int = 1
    run_store: RunStore | None = None
    temperature: float | None = None
    max_tokens: int | None = None

    def __post_init__(self) -> None:
        for name in ("max_steps", "max_invalid_tool_rounds", "output_repairs"):
            value = getattr(self, name)
            low = 1 if name == "max_steps" else 0
            if isinstance(value, bool) or not isinstance(value, int) or value < low:
                raise ValueError(f"{name} must be an integer ≥ {low}, got {value!r}")


class MemoryTurn(Protocol):
    """One run's turn on a thread: the history it starts from, and the commit of the
    run's new messages (atomic, compare-and-set on the thread's version)."""

    @property
    def history(self) -> Sequence[Message]: ...

    async def commit(self, messages: Sequence[Message]) -> object: ...


class AgentMemory(Protocol):
    """What an agent needs of `bastion.memory.Memory`."""

    def turn(self, thread_id: str, resource_id: str) -> AbstractAsyncContextManager[MemoryTurn]:
        """Take the thread's turn (waiting for a run that holds it)."""


@runtime_checkable
class RunStore(Protocol):
    """Where a run's steps are recorded (every `MemoryStore` is one)."""

    async def start_run(self, run: RunRecord) -> None: ...

    async def record_step(self, step: StepRecord) -> None: ...

    async def finish_run(
        self, run_id: str, status: Literal["ok", "error"], error: str | None
    ) -> None: ...
