"""A deterministic model for tests and the offline demo (public API).

    model = ScriptedModel([Fail("rate_limited", retry_after=1), "Hello!"])

Each call takes the next step of the script; when the script is spent, `default`
answers (a step, a string, or a function of the request). Every request received is
kept in `requests`, so a test can check what the router actually sent.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from dataclasses import dataclass, field

from bastion.resilience.errors import ErrorKind, StreamBroken, UpstreamError
from bastion.types import (
    ChatRequest,
    ChatResponse,
    FinishReason,
    Message,
    StreamEvent,
    StreamFinish,
    TextDelta,
    ToolCall,
    ToolCallDelta,
    Usage,
)


@dataclass(frozen=True, slots=True)
class Reply:
    """Answer with `text` (and/or tool calls). `delay` is spent before the first token;
    streams send `chunk` characters per event."""

    text: str = ""
    tool_calls: tuple[ToolCall, ...] = ()
    finish_reason: FinishReason | None = None
    delay: float = 0.0
    chunk: int = 8


@dataclass(frozen=True, slots=True)
class Fail:
    """Fail as an upstream would. With `after_chars`, a stream first sends that much
    of `partial` text and then breaks."""

    kind: ErrorKind | str
    message: str = "scripted failure"
    status: int | None = None
    retry_after: float | None = None
    after_chars: int | None = None
    partial: str = ""
    delay: float = 0.0


Step = Reply | Fail
Responder = Callable[[ChatRequest], Step | str]


def _as_step(step: Step | str) -> Step:
    return Reply(text=step) if isinstance(step, str) else step


@dataclass
class ScriptedModel:
    """A ChatModel that follows a script; see the module docstring."""

    script: Iterable[Step | str] = ()
    model: str = "scripted"
    default: Step | str | Responder | None = None
    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep
    requests: list[ChatRequest] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._queue: deque[Step] = deque(_as_step(s) for s in self.script)

    @property
    def model_name(self) -> str:
        return self.model

    def push(self, *steps: Step | str) -> None:
        self._queue.extend(_as_step(s) for s in steps)

    def _next(self, request: ChatRequest) -> Step:
        self.requests.append(request)
        if self._queue:
            return self._queue.popleft()
        if self.default is None:
            raise UpstreamError(ErrorKind.SERVER_ERROR, "script exhausted", status=500)
        if callable(self.default):
            return _as_step(self.default(request))
        return _as_step(self.default)

    def _error(self, step: Fail) -> UpstreamError:
        return UpstreamError(
            ErrorKind(step.kind),
            step.message,
            status=step.status,
            retry_after=step.retry_after,
            endpoint=self.model,
        )

    async def complete(self, request: ChatRequest) -> ChatResponse:
        step = self._next(request)
        if step.delay:
            await self.sleep(step.delay)
        if isinstance(step, Fail):
            raise self._error(step)
        text = _continuation(request, step.text)
        finish: FinishReason = step.finish_reason or ("tool_calls" if step.tool_calls else "stop")
        return ChatResponse(
            message=Message(role="assistant", content=text or None, tool_calls=step.tool_calls),
            finish_reason=finish,
            usage=_usage(request, text),
            model=self.model,
        )

    async def stream(self, request: ChatRequest) -> AsyncIterator[StreamEvent]:
        step = self._next(request)
        if step.delay:
            await self.sleep(step.delay)
        if isinstance(step, Fail):
            if step.after_chars is None:
                raise self._error(step)
            partial = step.partial[: step.after_chars]
            for start in range(0, len(partial), 8):
                yield TextDelta(partial[start : start + 8])
            raise StreamBroken(ErrorKind(step.kind), step.message, endpoint=self.model)
        text = _continuation(request, step.text)
        size = max(1, step.chunk)
        for start in range(0, len(text), size):
            yield TextDelta(text[start : start + size])
        for index, call in enumerate(step.tool_calls):
            yield ToolCallDelta(index, call.id, call.name, call.arguments)
        finish: FinishReason = step.finish_reason or ("tool_calls" if step.tool_calls else "stop")
        yield StreamFinish(finish, _usage(request, text))


def _continuation(request: ChatRequest, text: str) -> str:
    """Behave like a model given an assistant prefill: continue after it."""
    last = request.messages[-1] if request.messages else None
    prefill = last.content if last is not None and last.role == "assistant" else None
    if prefill and text.startswith(prefill):
        return text[len(prefill) :]
    return text


def _usage(request: ChatRequest, text: str) -> Usage:
    prompt = sum(len((m.content or "").split()) for m in request.messages)
    return Usage(prompt_tokens=prompt, completion_tokens=len(text.split()))
