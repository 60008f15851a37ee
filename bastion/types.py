"""The data that flows through Bastion: chat requests, answers and stream events.

The shapes stay close to the OpenAI chat format so that the gateway can map them
without loss, but they are plain frozen dataclasses: cheap to build on the hot path
and safe to share between attempts.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field, replace
from types import MappingProxyType
from typing import Any, Literal

Role = Literal["system", "user", "assistant", "tool"]
FinishReason = Literal["stop", "length", "tool_calls", "content_filter", "error"]

_EMPTY: Mapping[str, Any] = MappingProxyType({})


@dataclass(frozen=True, slots=True)
class ToolCall:
    """A call the model asks for; `arguments` is the JSON text the model wrote."""

    id: str
    name: str
    arguments: str


@dataclass(frozen=True, slots=True)
class Message:
    """One message of a conversation.

    `parts` is the content as OpenAI content parts when it holds more than text (an
    image, audio, a file), each a part checked at the edge and kept as sent; `content`
    is then the text of its text parts, for everything that reads only text (token
    estimates, logs, continuation). Without `parts` the content is `content` alone.
    """

    role: Role
    content: str | None = None
    tool_calls: tuple[ToolCall, ...] = ()
    tool_call_id: str | None = None
    name: str | None = None
    parts: tuple[Mapping[str, Any], ...] = ()


@dataclass(frozen=True, slots=True)
class ToolSpec:
    """A tool offered to the model: its name, what it does, a JSON schema of its arguments."""

    name: str
    description: str = ""
    parameters: Mapping[str, Any] = field(default_factory=lambda: {"type": "object"})


@dataclass(frozen=True, slots=True)
class ChatRequest:
    """One chat request, independent of which endpoint will serve it.

    `extra` carries provider fields Bastion does not interpret (response_format,
    seed, logprobs, ...); OpenAI-compatible providers pass them through unchanged.
    """

    messages: tuple[Message, ...]
    tools: tuple[ToolSpec, ...] = ()
    tool_choice: str | Mapping[str, Any] | None = None
    temperature: float | None = None
    max_tokens: int | None = None
    extra: Mapping[str, Any] = field(default_factory=lambda: _EMPTY)

    def with_messages(self, messages: tuple[Message, ...]) -> ChatRequest:
        return replace(self, messages=messages)

    def approx_prompt_chars(self) -> int:
        return sum(len(m.content or "") for m in self.messages)


@dataclass(frozen=True, slots=True)
class Usage:
    """Token counts. `cached_tokens` (of the prompt's, served from the provider's cache)
    and `reasoning_tokens` (of the completion's, spent thinking) are None when the
    provider did not say: unknown is not zero to someone computing a bill."""

    prompt_tokens: int = 0
    completion_tokens: int = 0
    cached_tokens: int | None = None
    reasoning_tokens: int | None = None

    @property
    def total_tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens

    def __add__(self, other: Usage) -> Usage:
        return Usage(
            self.prompt_tokens + other.prompt_tokens,
            self.completion_tokens + other.completion_tokens,
            _add_known(self.cached_tokens, other.cached_tokens),
            _add_known(self.reasoning_tokens, other.reasoning_tokens),
        )


def _add_known(a: int | None, b: int | None) -> int | None:
    return a if b is None else b if a is None else a + b


@dataclass(frozen=True, slots=True)
class AttemptRecord:
    """What one attempt on one endpoint came to; `kind` is None for a success.
    `started_at` is seconds since the request began."""

    endpoint: str
    model: str
    kind: str | None
    status: int | None
    started_at: float
    duration: float
    message: str = ""
    retry_in: float = 0.0  # the backoff waited after this attempt before the next

    @property
    def ok(self) -> bool:
        return self.kind is None


@dataclass(frozen=True, slots=True)
class ChatResponse:
    """A complete answer. `endpoint` and `model` name what actually served it."""

    message: Message
    finish_reason: FinishReason
    usage: Usage
    model: str
    endpoint: str = ""
    attempts: tuple[AttemptRecord, ...] = ()
    degraded: bool = False
    raw: Mapping[str, Any] | None = None

    @property
    def text(self) -> str:
        return self.message.content or ""


# --- stream events -------------------------------------------------------------------
# A provider's stream yields only content (TextDelta, ToolCallDelta) and one final
# StreamFinish; role-only and keep-alive chunks are dropped at the edge, so "the first
# event" always means "the first token" to the timeouts and the failover logic.


@dataclass(frozen=True, slots=True)
class UpstreamInfo:
    """What an OpenAI-compatible upstream says about its answer besides the content,
    kept so that the gateway can pass it on as it was said: the answer's `id`,
    `created`, the `model` that answered, `system_fingerprint`, `service_tier`. On a
    stream's `StreamFinish` it also holds the `usage` object as sent (every detail, not
    only those `Usage` types) and the `refusal` text, if any."""

    id: str | None = None
    created: int | None = None
    model: str | None = None
    system_fingerprint: str | None = None
    service_tier: str | None = None
    usage: Mapping[str, Any] | None = None
    refusal: str | None = None


@dataclass(frozen=True, slots=True)
class TextDelta:
    """A piece of text. `logprobs` is the upstream's own `logprobs` object for it (OpenAI's
    shape), when asked for; `info` what the upstream said about the answer (metadata,
    not content: it takes no part in equality)."""

    text: str
    logprobs: Mapping[str, Any] | None = None
    info: UpstreamInfo | None = field(default=None, compare=False, repr=False)


@dataclass(frozen=True, slots=True)
class ToolCallDelta:
    """A piece of a tool call. `id` and `name` arrive once; `arguments` arrives in parts."""

    index: int
    id: str | None = None
    name: str | None = None
    arguments: str = ""
    info: UpstreamInfo | None = field(default=None, compare=False, repr=False)


@dataclass(frozen=True, slots=True)
class StreamFinish:
    finish_reason: FinishReason
    usage: Usage | None = None
    info: UpstreamInfo | None = field(default=None, compare=False, repr=False)


@dataclass(frozen=True, slots=True)
class StreamError:
    """An in-band error: the stream could not be completed. Always followed by a
    StreamFinish whose finish_reason is "error", never "stop"."""

    kind: str
    message: str
    attempts: tuple[AttemptRecord, ...] = ()


StreamEvent = TextDelta | ToolCallDelta | StreamFinish
RouterStreamEvent = TextDelta | ToolCallDelta | StreamFinish | StreamError


def user(text: str) -> Message:
    return Message(role="user", content=text)


def system(text: str) -> Message:
    return Message(role="system", content=text)


def assistant(text: str) -> Message:
    return Message(role="assistant", content=text)


def chat(*messages: Message | str, **options: Any) -> ChatRequest:
    """Build a request; bare strings are user messages."""
    msgs = tuple(user(m) if isinstance(m, str) else m for m in messages)
    return ChatRequest(messages=msgs, **options)


class RuntimeContext(Mapping[str, Any]):
    """Values that come with a request (tenant, user tier, region, ...) and reach model
    selectors, instructions and tools. Read-only once built."""

    __slots__ = ("_values",)

    def __init__(self, values: Mapping[str, Any] | None = None, /, **more: Any) -> None:
        self._values: dict[str, Any] = {**(values or {}), **more}

    def __getitem__(self, key: str) -> Any:
        return self._values[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._values)

    def __len__(self) -> int:
        return len(self._values)

    def __repr__(self) -> str:
        return f"RuntimeContext({self._values!r})"
