"""Input and output processors: small callables that guard what goes in and out.

A processor is `(messages, context) -> messages | Refusal`, sync or async. Input
processors run, in order, on the caller's new messages before the first model step;
output processors run on the final assistant message. A `Refusal` ends the run with
`AgentResult.refused` set to its reason — a clear answer, not an exception.

    agent = Agent(..., options=AgentOptions(
        input_processors=(block(r"(?i)ignore previous instructions", "prompt injection"),),
        output_processors=(redact([r"\\b\\d{16}\\b"]),),
    ))
"""

from __future__ import annotations

import inspect
import re
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass

from bastion.types import Message, RuntimeContext


@dataclass(frozen=True, slots=True)
class Refusal:
    """Stop the run; `reason` is what the caller gets in `AgentResult.refused`."""

    reason: str


ProcessorResult = Sequence[Message] | Refusal
Processor = Callable[
    [Sequence[Message], RuntimeContext], ProcessorResult | Awaitable[ProcessorResult]
]


async def run_processors(
    processors: Sequence[Processor], messages: Sequence[Message], context: RuntimeContext
) -> ProcessorResult:
    """Run the chain in order; the first `Refusal` stops it."""
    for processor in processors:
        produced = processor(messages, context)
        if inspect.isawaitable(produced):
            produced = await produced
        if isinstance(produced, Refusal):
            return produced
        messages = produced
    return messages


Patterns = str | re.Pattern[str] | Iterable[str | re.Pattern[str]]


def _compile(patterns: Patterns) -> tuple[re.Pattern[str], ...]:
    items = [patterns] if isinstance(patterns, str | re.Pattern) else list(patterns)
    if not items:
        raise ValueError("give at least one pattern")
    return tuple(re.compile(p) for p in items)


class redact:
    """A processor that replaces every match of `patterns` in message text with
    `replacement`. Messages without a match are passed on as they are."""

    __slots__ = ("_patterns", "replacement")

    def __init__(self, patterns: Patterns, replacement: str = "[redacted]") -> None:
        self._patterns = _compile(patterns)
        self.replacement = replacement

    def __call__(self, messages: Sequence[Message], context: RuntimeContext) -> list[Message]:
        out: list[Message] = []
        for message in messages:
            text = message.content
            if text:
                for pattern in self._patterns:
                    text = pattern.sub(self.replacement, text)
                if text != message.content:
                    message = Message(
                        message.role, text, message.tool_calls, message.tool_call_id, message.name
                    )
            out.append(message)
        return out

    def __repr__(self) -> str:
        return f"redact({[p.pattern for p in self._patterns]!r})"


class block:
    """A processor that refuses with `reason` when any message text matches `pattern`."""

    __slots__ = ("_patterns", "reason")

    def __init__(self, pattern: Patterns, reason: str) -> None:
        self._patterns = _compile(pattern)
        self.reason = reason

    def __call__(
        self, messages: Sequence[Message], context: RuntimeContext
    ) -> Sequence[Message] | Refusal:
        for message in messages:
            if message.content and any(p.search(message.content) for p in self._patterns):
                return Refusal(self.reason)
        return messages

    def __repr__(self) -> str:
        return f"block({[p.pattern for p in self._patterns]!r}, {self.reason!r})"
