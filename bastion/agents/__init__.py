"""Agents: a model that uses tools in a loop, with failover, memory and guards.

See `agent` for the Agent, `tools` for `@tool`, `events` for what a run produces,
`processors` for input/output guards, `output` for structured answers and `loop` for
the run as discrete, recorded steps.
"""

from bastion.agents.agent import Agent, AgentInput
from bastion.agents.errors import (
    AgentError,
    MissingContext,
    OutputInvalid,
    StepLimitReached,
    ToolArgumentsInvalid,
)
from bastion.agents.events import (
    AgentEvent,
    AgentResult,
    Error,
    Finished,
    ModelSwitched,
    StepFinished,
    ToolCallStarted,
    ToolResult,
)
from bastion.agents.options import AgentMemory, AgentOptions, ContextNeeds, MemoryTurn, RunStore
from bastion.agents.processors import Processor, Refusal, block, redact
from bastion.agents.tools import Tool, ToolContext, ToolError, tool
from bastion.types import TextDelta

__all__ = [
    "Agent",
    "AgentError",
    "AgentEvent",
    "AgentInput",
    "AgentMemory",
    "AgentOptions",
    "AgentResult",
    "ContextNeeds",
    "Error",
    "Finished",
    "MemoryTurn",
    "MissingContext",
    "ModelSwitched",
    "OutputInvalid",
    "Processor",
    "Refusal",
    "RunStore",
    "StepFinished",
    "StepLimitReached",
    "TextDelta",
    "Tool",
    "ToolArgumentsInvalid",
    "ToolCallStarted",
    "ToolContext",
    "ToolError",
    "ToolResult",
    "block",
    "redact",
    "tool",
]
