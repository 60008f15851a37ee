"""Faults: what a fake upstream does with one request.

`Fault` is the base of a small family of frozen dataclasses, one per behaviour; build
them with the constructors on `Fault` (`Fault.ok()`, `Fault.status(429, retry_after=2)`,
`Fault.cut(40)`, ...). Every fault is JSON round-trippable through `to_dict()` and
`Fault.from_dict()`, so a fleet in another process can be scripted over HTTP;
`from_dict` validates and raises `FaultError` naming the offending field.

"Chars" always count answer content: text, then tool-call argument text.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import MISSING, dataclass, fields
from typing import Any, ClassVar

from bastion.testing.params import READERS, FaultError, ToolCallSpec


@dataclass(frozen=True, slots=True)
class Fault:
    """One scripted behaviour. Subclasses carry the parameters; `kind` names them."""

    kind: ClassVar[str] = ""

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict: `{"kind": ..., <every parameter>}`."""
        out: dict[str, Any] = {"kind": self.kind}
        for f in fields(self):
            value = getattr(self, f.name)
            if isinstance(value, Fault):
                value = value.to_dict()
            elif f.name == "tool_calls" and value is not None:
                value = [list(call) for call in value]
            out[f.name] = value
        return out

    @staticmethod
    def from_dict(data: Mapping[str, Any]) -> Fault:
        """Rebuild a fault from `to_dict()` output (or hand-written JSON), validating it."""
        if not isinstance(data, Mapping):
            raise FaultError("fault", f"expected an object, got {type(data).__name__}")
        kind = data.get("kind")
        cls = _KINDS.get(kind) if isinstance(kind, str) else None
        if cls is None:
            raise FaultError("kind", f"unknown fault kind {kind!r}; known: {', '.join(_KINDS)}")
        allowed = {f.name for f in fields(cls)}
        params: dict[str, Any] = {}
        for key, value in data.items():
            if key == "kind":
                continue
            if key not in allowed:
                raise FaultError(key, f"not a parameter of fault {kind!r}")
            params[key] = _nested(key, value) if key == "down" else READERS[key](key, value)
        for f in fields(cls):
            if f.name not in params and f.default is MISSING:
                raise FaultError(f.name, f"required by fault {kind!r}")
        return cls(**params)

    # --- constructors -----------------------------------------------------------------

    @staticmethod
    def ok(
        text: str | None = None,
        latency: float = 0.0,
        chunk_delay: float | None = None,
        chunk_chars: int | None = None,
        tool_calls: Sequence[tuple[str, str | Mapping[str, Any]]] | None = None,
    ) -> Ok:
        """A normal answer after `latency` s. `text` defaults to the upstream's text;
        pacing defaults to the upstream's. With `tool_calls` the answer calls those tools
        (finish_reason "tool_calls") and carries text only if `text` is given."""
        calls = None
        if tool_calls is not None:
            calls = tuple(
                (name, args if isinstance(args, str) else json.dumps(args))
                for name, args in tool_calls
            )
        return Ok(text, latency, chunk_delay, chunk_chars, calls)

    @staticmethod
    def status(
        code: int,
        retry_after: float | None = None,
        retry_after_ms: int | None = None,
        retry_after_date: bool = False,
        body: str | Mapping[str, Any] | None = None,
    ) -> Status:
        """An HTTP error answer. `retry_after` sets `Retry-After` in seconds (or as an
        HTTP-date when `retry_after_date`); `retry_after_ms` sets `retry-after-ms`.
        `body` replaces the provider-style error JSON."""
        text = body if body is None or isinstance(body, str) else json.dumps(body)
        return Status(code, retry_after, retry_after_ms, retry_after_date, text)

    @staticmethod
    def reset() -> Reset:
        """Reset the connection before any response byte."""
        return Reset()

    @staticmethod
    def hang() -> Hang:
        """Accept the request and never answer, until the client leaves or the server closes."""
        return Hang()

    @staticmethod
    def slow_first_token(delay: float) -> SlowFirstToken:
        """Streaming: headers at once, first content after `delay` s. Otherwise: answer late."""
        return SlowFirstToken(delay)

    @staticmethod
    def cut(after_chars: int) -> Cut:
        """Drop the connection after `after_chars` chars of content: no finish, no [DONE]."""
        return Cut(after_chars)

    @staticmethod
    def stall(after_chars: int, duration: float) -> Stall:
        """Pause `duration` s after `after_chars` chars of content, then finish normally."""
        return Stall(after_chars, duration)

    @staticmethod
    def malformed(after_chars: int) -> Malformed:
        """Send a chunk that is not valid JSON after `after_chars` chars of content."""
        return Malformed(after_chars)

    @staticmethod
    def missing_done() -> MissingDone:
        """Stream with a finish reason but no end marker ([DONE] / message_stop), then EOF."""
        return MissingDone()

    @staticmethod
    def no_finish() -> NoFinish:
        """Stream that ends cleanly, but no chunk ever carries a finish reason."""
        return NoFinish()

    @staticmethod
    def inband_error(after_chars: int, message: str = "The server is overloaded") -> InbandError:
        """A 200 stream that sends an error event after `after_chars` chars, then ends."""
        return InbandError(after_chars, message)

    @staticmethod
    def context_length(max_chars: int | None = None) -> ContextLength:
        """400 context_length_exceeded; with `max_chars`, only for prompts longer than that."""
        return ContextLength(max_chars)

    @staticmethod
    def content_filter() -> ContentFilter:
        """400 with Azure OpenAI's content_filter body."""
        return ContentFilter()

    @staticmethod
    def reject_prefill() -> RejectPrefill:
        """400 when the last message is an assistant prefill; otherwise a normal answer."""
        return RejectPrefill()

    @staticmethod
    def flapping(
        down_for: float, down: Fault | None = None, up_for: float | None = None
    ) -> Flapping:
        """Behave as `down` (default: 503) for `down_for` s from when the fault is set,
        then healthy; with `up_for`, cycle down/up forever."""
        return Flapping(down_for, down if down is not None else Status(503), up_for)


def _non_negative(field: str, value: float | None) -> None:
    if value is not None and value < 0:
        raise FaultError(field, f"must be >= 0, got {value}")


@dataclass(frozen=True, slots=True)
class Ok(Fault):
    """A normal answer; see `Fault.ok`."""

    kind: ClassVar[str] = "ok"
    text: str | None = None
    latency: float = 0.0
    chunk_delay: float | None = None
    chunk_chars: int | None = None
    tool_calls: tuple[ToolCallSpec, ...] | None = None

    def __post_init__(self) -> None:
        _non_negative("latency", self.latency)
        _non_negative("chunk_delay", self.chunk_delay)
        if self.chunk_chars is not None and self.chunk_chars < 1:
            raise FaultError("chunk_chars", f"must be >= 1, got {self.chunk_chars}")


@dataclass(frozen=True, slots=True)
class Status(Fault):
    """An HTTP error answer; see `Fault.status`."""

    kind: ClassVar[str] = "status"
    code: int
    retry_after: float | None = None
    retry_after_ms: int | None = None
    retry_after_date: bool = False
    body: str | None = None

    def __post_init__(self) -> None:
        if not 400 <= self.code <= 599:
            raise FaultError("code", f"must be an HTTP error status (400-599), got {self.code}")
        _non_negative("retry_after", self.retry_after)
        _non_negative("retry_after_ms", self.retry_after_ms)
        if self.retry_after_date and self.retry_after is None:
            raise FaultError("retry_after_date", "needs retry_after (the seconds to wait)")


@dataclass(frozen=True, slots=True)
class Reset(Fault):
    """A connection reset before any response byte."""

    kind: ClassVar[str] = "reset"


@dataclass(frozen=True, slots=True)
class Hang(Fault):
    """A request that is never answered."""

    kind: ClassVar[str] = "hang"


@dataclass(frozen=True, slots=True)
class SlowFirstToken(Fault):
    """Headers at once, first content after `delay` s."""

    kind: ClassVar[str] = "slow_first_token"
    delay: float

    def __post_init__(self) -> None:
        _non_negative("delay", self.delay)


@dataclass(frozen=True, slots=True)
class _MidStream(Fault):
    """A fault that strikes after `after_chars` chars of content."""

    after_chars: int

    def __post_init__(self) -> None:
        _non_negative("after_chars", self.after_chars)


@dataclass(frozen=True, slots=True)
class Cut(_MidStream):
    """A stream dropped after `after_chars` chars."""

    kind: ClassVar[str] = "cut"


@dataclass(frozen=True, slots=True)
class Stall(_MidStream):
    """A stream that pauses `duration` s after `after_chars` chars."""

    kind: ClassVar[str] = "stall"
    duration: float

    def __post_init__(self) -> None:
        _non_negative("after_chars", self.after_chars)
        _non_negative("duration", self.duration)


@dataclass(frozen=True, slots=True)
class Malformed(_MidStream):
    """A chunk that is not JSON after `after_chars` chars."""

    kind: ClassVar[str] = "malformed"


@dataclass(frozen=True, slots=True)
class InbandError(_MidStream):
    """An error event in a 200 stream after `after_chars` chars."""

    kind: ClassVar[str] = "inband_error"
    message: str = "The server is overloaded"


@dataclass(frozen=True, slots=True)
class MissingDone(Fault):
    """A stream without its end marker."""

    kind: ClassVar[str] = "missing_done"


@dataclass(frozen=True, slots=True)
class NoFinish(Fault):
    """A stream without a finish reason."""

    kind: ClassVar[str] = "no_finish"


@dataclass(frozen=True, slots=True)
class ContextLength(Fault):
    """A 400 context-length error, for prompts over `max_chars` if given."""

    kind: ClassVar[str] = "context_length"
    max_chars: int | None = None

    def __post_init__(self) -> None:
        _non_negative("max_chars", self.max_chars)


@dataclass(frozen=True, slots=True)
class ContentFilter(Fault):
    """A 400 from Azure's content filter."""

    kind: ClassVar[str] = "content_filter"


@dataclass(frozen=True, slots=True)
class RejectPrefill(Fault):
    """A 400 for requests that end with an assistant message."""

    kind: ClassVar[str] = "reject_prefill"


@dataclass(frozen=True, slots=True)
class Flapping(Fault):
    """`down` for `down_for` s, then healthy (for `up_for` s, repeating, if given)."""

    kind: ClassVar[str] = "flapping"
    down_for: float
    down: Fault = Status(503)
    up_for: float | None = None

    def __post_init__(self) -> None:
        _non_negative("down_for", self.down_for)
        if self.up_for is not None and self.up_for <= 0:
            raise FaultError("up_for", f"must be > 0, got {self.up_for}")


_KINDS: Mapping[str, type[Fault]] = {
    cls.kind: cls
    for cls in (
        Ok,
        Status,
        Reset,
        Hang,
        SlowFirstToken,
        Cut,
        Stall,
        Malformed,
        MissingDone,
        NoFinish,
        InbandError,
        ContextLength,
        ContentFilter,
        RejectPrefill,
        Flapping,
    )
}
FAULT_KINDS: tuple[str, ...] = tuple(_KINDS)
"""Every fault kind, in the order the constructors are documented."""


def _nested(field: str, value: Any) -> Fault:
    try:
        return Fault.from_dict(value)
    except FaultError as exc:
        raise FaultError(f"{field}.{exc.field}", exc.message) from None
