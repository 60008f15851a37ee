"""The seam through which a run takes its model and tool steps, so that a durable
engine (`bastion.durable`) can record each step's outcome and replay it on resume.

A run calls `journal.step(name, call)` for every model call and every tool call;
`call` makes the call, and what the journal returns is the step's outcome. `DIRECT`,
the default, just calls. A durable journal returns the recorded outcome of a step it
has already seen, and records a new one before handing it on — so the step that was
in flight when a process died is the only one that may run twice, with the same
idempotency key (`ToolContext.idempotency_key`).

`DurableRuns` is what an `Agent` hands its `generate` to when durability is on: it
runs the whole run as a durable workflow under the run id and returns its result.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, Protocol, TypeVar

from bastion.types import Message

if TYPE_CHECKING:
    from bastion.agents.agent import Agent
    from bastion.agents.events import AgentResult

T = TypeVar("T")


class StepJournal(Protocol):
    """Carries out one step of a run, or returns its recorded outcome."""

    async def step(self, name: str, call: Callable[[], Awaitable[T]]) -> T: ...


class _Direct:
    __slots__ = ()

    async def step(self, name: str, call: Callable[[], Awaitable[T]]) -> T:
        return await call()


DIRECT: StepJournal = _Direct()
"""The journal of a run that is not durable: every step is simply called."""


class DurableRuns(Protocol):
    """Runs an agent's run to the end as a durable workflow named by `run_id`."""

    async def generate(
        self,
        agent: Agent,
        messages: Sequence[Message],
        context: Mapping[str, Any],
        run_id: str,
        thread_id: str | None,
        resource_id: str | None,
    ) -> AgentResult: ...
