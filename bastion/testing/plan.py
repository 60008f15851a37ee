"""Deciding what to do with a request, apart from doing it.

`decide()` is pure: given the fault in force, the request as read by a wire, the
upstream's settings and the clocks, it returns a `Plan` — an error reply, a dropped
connection, a hang, or an `Answer` to stream. The server carries the plan out; tests of
the rules need no sockets.
"""

from __future__ import annotations

import re
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass, replace
from email.utils import formatdate
from typing import Any, Literal

from bastion.testing.faults import (
    ContentFilter,
    ContextLength,
    Cut,
    Fault,
    Flapping,
    Hang,
    InbandError,
    Malformed,
    MissingDone,
    NoFinish,
    Ok,
    RejectPrefill,
    Reset,
    SlowFirstToken,
    Stall,
    Status,
)
from bastion.testing.params import FaultError, ToolCallSpec

PrefillMode = Literal["continue", "ignore", "reject"]
"""What an upstream does with a final assistant message: continue it (vLLM, Anthropic),
ignore it and start its answer over (OpenAI's API), or reject it with a 400."""

InstructMode = Literal["continue", "overlap", "sentence", "restart", "reword"]
"""What an upstream does when asked to continue its cut answer by instruction (the
partial answer as an assistant message, then a user message): continue right where it
stopped, first repeat its last `overlap_words` words (the default), first repeat the
sentence it stopped in, start its answer over, or start over with small changes to the
part already given (see `reword`)."""

PREFILL_MODES: tuple[PrefillMode, ...] = ("continue", "ignore", "reject")
INSTRUCT_MODES: tuple[InstructMode, ...] = ("continue", "overlap", "sentence", "restart", "reword")

ErrorName = Literal["status", "context_length", "content_filter", "prefill", "bad_request"]
Glitch = Cut | Stall | Malformed | InbandError
Ending = Literal["normal", "missing_done", "no_finish"]


@dataclass(frozen=True, slots=True)
class Turn:
    """One message, reduced to what the continuation rules read."""

    role: str
    text: str


@dataclass(frozen=True, slots=True)
class Incoming:
    """A chat request as read by a wire (OpenAI or Anthropic)."""

    api: str
    model: str
    stream: bool
    turns: tuple[Turn, ...]
    include_usage: bool
    body: Mapping[str, Any]

    @property
    def prefill(self) -> str | None:
        """The final assistant message's text, if the request ends with one."""
        if self.turns and self.turns[-1].role == "assistant" and self.turns[-1].text:
            return self.turns[-1].text
        return None

    @property
    def prompt_chars(self) -> int:
        return sum(len(t.text) for t in self.turns)

    @property
    def prompt_tokens(self) -> int:
        return sum(count_tokens(t.text) for t in self.turns)


@dataclass(frozen=True, slots=True)
class Settings:
    """An upstream's standing behaviour; faults override the pacing."""

    text: str
    overlap_words: int = 3
    prefill: PrefillMode = "continue"
    chunk_chars: int = 8
    chunk_delay: float = 0.0
    instruct: InstructMode = "overlap"

    def __post_init__(self) -> None:
        if self.prefill not in PREFILL_MODES:
            raise FaultError("prefill", f"expected one of {', '.join(PREFILL_MODES)}")
        if self.instruct not in INSTRUCT_MODES:
            raise FaultError("instruct", f"expected one of {', '.join(INSTRUCT_MODES)}")
        if self.overlap_words < 0:
            raise FaultError("overlap_words", f"must be >= 0, got {self.overlap_words}")
        if self.chunk_chars < 1:
            raise FaultError("chunk_chars", f"must be >= 1, got {self.chunk_chars}")
        if self.chunk_delay < 0:
            raise FaultError("chunk_delay", f"must be >= 0, got {self.chunk_delay}")

    def continuation(self) -> dict[str, Any]:
        """How this upstream continues a cut answer, as `with_continuation` reads it."""
        return {
            "prefill": self.prefill,
            "instruct": self.instruct,
            "overlap_words": self.overlap_words,
        }

    def with_continuation(self, changes: Mapping[str, Any]) -> Settings:
        """These settings with some of `continuation()` changed; `FaultError` names a
        field that is unknown or of the wrong type."""
        if not isinstance(changes, Mapping):
            raise FaultError("continuation", "expected an object")
        values = self.continuation()
        for key, value in changes.items():
            if key not in values:
                raise FaultError(key, f"unknown field; expected {', '.join(values)}")
            if key == "overlap_words":
                if isinstance(value, bool) or not isinstance(value, int):
                    raise FaultError(key, f"expected an integer, got {value!r}")
            elif not isinstance(value, str):
                raise FaultError(key, f"expected a string, got {value!r}")
            values[key] = value
        return replace(self, **values)


# --- plans ------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ErrorReply:
    status: int
    error: ErrorName
    headers: tuple[tuple[str, str], ...] = ()
    body: str | None = None


@dataclass(frozen=True, slots=True)
class Drop:
    """Reset the connection without a response."""


@dataclass(frozen=True, slots=True)
class Hold:
    """Never answer."""


@dataclass(frozen=True, slots=True)
class Answer:
    text: str
    tool_calls: tuple[ToolCallSpec, ...] = ()
    latency: float = 0.0
    first_token_delay: float = 0.0
    chunk_chars: int = 8
    chunk_delay: float = 0.0
    glitch: Glitch | None = None
    ending: Ending = "normal"

    @property
    def content_chars(self) -> int:
        return len(self.text) + sum(len(args) for _, args in self.tool_calls)

    @property
    def completion_tokens(self) -> int:
        return count_tokens(self.text) + sum(count_tokens(a) for _, a in self.tool_calls)


Plan = ErrorReply | Drop | Hold | Answer


def count_tokens(text: str) -> int:
    """Tokens, counted roughly as words: enough for usage fields to be plausible."""
    return len(text.split())


_WORD = re.compile(r"\S+")


def answer_text(full: str, turns: tuple[Turn, ...], settings: Settings) -> str:
    """The part of `full` this request should get, by the continuation rules.

    A final assistant message P (a prefill) is continued: the answer is what follows P
    in `full` (all of `full` if P is not its prefix, or if the upstream ignores
    prefills). An assistant message P that is a proper prefix of `full`, followed by
    one last user message ("please continue"), is answered as `settings.instruct` says
    (see `InstructMode`); by default from `overlap_words` words before the end of P, as
    a real model tends to, so the caller has an overlap to trim.
    """
    if turns and turns[-1].role == "assistant" and turns[-1].text:
        if settings.prefill != "continue":
            return full
        prefix = turns[-1].text
        return full[len(prefix) :] if full.startswith(prefix) else full
    if len(turns) >= 2 and turns[-1].role == "user" and turns[-2].role == "assistant":
        prefix = turns[-2].text
        if prefix and len(prefix) < len(full) and full.startswith(prefix):
            return _continued(full, prefix, settings)
    return full


def _continued(full: str, prefix: str, settings: Settings) -> str:
    rest = full[len(prefix) :]
    mode = settings.instruct
    if mode == "restart":
        return full
    if mode == "reword":
        return reword(prefix) + rest
    if mode == "sentence":
        return full[sentence_start(prefix) :]
    if mode == "continue" or settings.overlap_words <= 0:
        return rest
    starts = [m.start() for m in _WORD.finditer(prefix)]
    return full[starts[max(0, len(starts) - settings.overlap_words)] :]


_SENTENCE_BREAK = re.compile(r"[.!?]+\s+")


def sentence_start(prefix: str) -> int:
    """Where the sentence `prefix` stops in begins; if `prefix` stops between two
    sentences, where the one before begins."""
    end = len(prefix.rstrip())
    starts = [0, *(m.end() for m in _SENTENCE_BREAK.finditer(prefix))]
    return max(s for s in starts if s < end) if end else 0


def reword(prefix: str) -> str:
    """`prefix` said again with small changes, as a model starting over tends to: the
    first word's case flipped, the space after it doubled, and its middle word replaced
    by "indeed" — all before its last three words, which stay as they were."""
    parts = re.split(r"(\s+)", prefix)
    words = [i for i, part in enumerate(parts) if part and not part.isspace()]
    editable = words[:-3]
    if not editable:
        return prefix
    first = editable[0]
    parts[first] = parts[first][0].swapcase() + parts[first][1:]
    if first + 1 < len(parts) and parts[first + 1] == " ":
        parts[first + 1] = "  "
    if len(editable) >= 3:
        middle = editable[len(editable) // 2]
        parts[middle] = re.sub(r"^\w+", "indeed", parts[middle])
    return "".join(parts)


def retry_after_headers(fault: Status, wall_now: float) -> tuple[tuple[str, str], ...]:
    headers: list[tuple[str, str]] = []
    if fault.retry_after is not None:
        if fault.retry_after_date:
            value = formatdate(wall_now + fault.retry_after, usegmt=True)
        else:
            value = f"{fault.retry_after:g}"
        headers.append(("Retry-After", value))
    if fault.retry_after_ms is not None:
        headers.append(("retry-after-ms", str(fault.retry_after_ms)))
    return tuple(headers)


def effective(fault: Fault, set_at: float, now: float) -> Fault:
    """The fault in force at `now`: flapping resolves to its down fault or to ok."""
    while isinstance(fault, Flapping):
        elapsed = now - set_at
        if fault.up_for is not None:
            elapsed %= fault.down_for + fault.up_for
        fault = fault.down if elapsed < fault.down_for else Ok()
    return fault


def decide(
    fault: Fault,
    set_at: float,
    request: Incoming,
    settings: Settings,
    *,
    now: float,
    wall_now: float,
) -> tuple[str, Plan]:
    """What to do with `request`, and the name of the behaviour (for the attempt log)."""
    fault = effective(fault, set_at, now)
    if isinstance(fault, Status):
        reply = ErrorReply(fault.code, "status", retry_after_headers(fault, wall_now), fault.body)
        return fault.kind, reply
    if isinstance(fault, Reset):
        return fault.kind, Drop()
    if isinstance(fault, Hang):
        return fault.kind, Hold()
    if isinstance(fault, ContextLength) and (
        fault.max_chars is None or request.prompt_chars > fault.max_chars
    ):
        return fault.kind, ErrorReply(400, "context_length")
    if isinstance(fault, ContentFilter):
        return fault.kind, ErrorReply(400, "content_filter")
    if request.prefill is not None and (
        isinstance(fault, RejectPrefill) or settings.prefill == "reject"
    ):
        return "reject_prefill", ErrorReply(400, "prefill")
    return _answer(fault, request, settings)


def _answer(fault: Fault, request: Incoming, settings: Settings) -> tuple[str, Answer]:
    full, latency = settings.text, 0.0
    tool_calls: tuple[ToolCallSpec, ...] = ()
    chunk_chars, chunk_delay = settings.chunk_chars, settings.chunk_delay
    if isinstance(fault, Ok):
        latency = fault.latency
        if fault.tool_calls is not None:
            full, tool_calls = fault.text or "", fault.tool_calls
        elif fault.text is not None:
            full = fault.text
        chunk_chars = fault.chunk_chars if fault.chunk_chars is not None else chunk_chars
        chunk_delay = fault.chunk_delay if fault.chunk_delay is not None else chunk_delay
    ending: Ending = "normal"
    if isinstance(fault, MissingDone):
        ending = "missing_done"
    elif isinstance(fault, NoFinish):
        ending = "no_finish"
    answer = Answer(
        text=answer_text(full, request.turns, settings),
        tool_calls=tool_calls,
        latency=latency,
        first_token_delay=fault.delay if isinstance(fault, SlowFirstToken) else 0.0,
        chunk_chars=chunk_chars,
        chunk_delay=chunk_delay,
        glitch=fault if isinstance(fault, Glitch) else None,
        ending=ending,
    )
    shaped = isinstance(fault, SlowFirstToken | Glitch | MissingDone | NoFinish)
    return (fault.kind if shaped else "ok"), answer


# --- the script -------------------------------------------------------------------------

MAX_QUEUED = 10_000
"""Queued faults per upstream; a runaway test script fails loudly instead of growing."""


class Schedule:
    """Which fault applies to the next request: queued faults first (for the request's
    model, then for any model), then the model's default, then the upstream default.
    Every entry remembers when it was set, for flapping."""

    def __init__(self, now: float) -> None:
        self._default: tuple[Fault, float] = (Ok(), now)
        self._model_defaults: dict[str, tuple[Fault, float]] = {}
        self._queues: dict[str | None, deque[tuple[Fault, float]]] = {}

    def set_default(self, fault: Fault, model: str | None, now: float) -> None:
        if model is None:
            self._default = (fault, now)
        else:
            self._model_defaults[model] = (fault, now)

    def push(self, faults: tuple[Fault, ...], model: str | None, now: float) -> None:
        queue = self._queues.setdefault(model, deque())
        if len(queue) + len(faults) > MAX_QUEUED:
            raise FaultError("faults", f"more than {MAX_QUEUED} queued faults")
        queue.extend((fault, now) for fault in faults)

    def take(self, model: str) -> tuple[Fault, float]:
        for key in (model, None):
            queue = self._queues.get(key)
            if queue:
                return queue.popleft()
        return self.standing(model)

    def standing(self, model: str | None = None) -> tuple[Fault, float]:
        """The default in force, ignoring queued faults (what health probes see)."""
        if model is not None and model in self._model_defaults:
            return self._model_defaults[model]
        return self._default

    def queued(self) -> dict[str | None, int]:
        return {model: len(q) for model, q in self._queues.items() if q}

    def models(self) -> list[str]:
        named = set(self._model_defaults) | {m for m in self._queues if m is not None}
        return sorted(named)

    def clear_queued(self) -> None:
        self._queues.clear()

    def heal(self, now: float) -> None:
        self._default = (Ok(), now)
        self._model_defaults.clear()
        self._queues.clear()
