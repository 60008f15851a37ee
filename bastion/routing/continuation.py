"""Continuing a stream on another endpoint after tokens were already sent.

Two ways, chosen per target:
- prefill: the partial answer goes in as a trailing assistant message and the model
  writes what follows it (Anthropic, vLLM, llama.cpp, most local servers);
- instruct: for targets that reject a prefill, the partial answer goes in as an
  assistant message followed by a short instruction to continue from its last words.
  A model asked that way tends to repeat a few words, so the head of its answer is
  held until the overlap with the tail of what was sent can be found and trimmed.
"""

from __future__ import annotations

from typing import Literal

from bastion.types import ChatRequest, Message

Mode = Literal["prefill", "instruct"]

CONTINUE_INSTRUCTION = (
    "Your previous answer was cut off. Continue it exactly where it stopped, starting "
    "with its last few words. Do not repeat anything before them, do not add a preface."
)

# How much of the continuation to hold before deciding on the overlap, and how far
# back into what was sent to look for it. Models repeat words, not paragraphs.
HOLD_CHARS = 160
TAIL_CHARS = 400
# An overlap shorter than this is likelier a coincidence ("a", "the") than a repeat.
MIN_OVERLAP = 6


def continuation_request(request: ChatRequest, sent: str, mode: Mode) -> ChatRequest:
    partial = Message(role="assistant", content=sent)
    if mode == "prefill":
        return request.with_messages((*request.messages, partial))
    instruction = Message(role="user", content=CONTINUE_INSTRUCTION)
    return request.with_messages((*request.messages, partial, instruction))


def find_overlap(sent: str, head: str) -> int:
    """Length of the longest prefix of `head` that repeats a suffix of `sent`.

    Whitespace at the seam is ignored on both sides: "...lazy dog" followed by
    " lazy dog." overlaps on "lazy dog". Returns how many characters of `head` to drop.
    """
    tail = sent[-TAIL_CHARS:].rstrip()
    stripped = head.lstrip()
    lead = len(head) - len(stripped)
    for size in range(min(len(tail), len(stripped)), MIN_OVERLAP - 1, -1):
        if tail.endswith(stripped[:size]) and _at_boundary(tail, size):
            return lead + size
    return 0


def _at_boundary(tail: str, size: int) -> bool:
    """The repeat must start at a word boundary of what was sent."""
    start = len(tail) - size
    return start == 0 or not tail[start - 1].isalnum() or not tail[start].isalnum()


class OverlapTrimmer:
    """Feeds a continuation through, holding its head until the overlap is known."""

    __slots__ = ("_decided", "_held", "_sent", "trimmed")

    def __init__(self, sent: str) -> None:
        self._sent = sent
        self._held = ""
        self._decided = False
        self.trimmed = 0

    def feed(self, text: str) -> str:
        if self._decided:
            return text
        self._held += text
        if len(self._held) < HOLD_CHARS:
            return ""
        return self._release()

    def flush(self) -> str:
        return "" if self._decided else self._release()

    def _release(self) -> str:
        self._decided = True
        self.trimmed = find_overlap(self._sent, self._held)
        out = self._held[self.trimmed :]
        self._held = ""
        return out


class ContinuationAligner(OverlapTrimmer):
    """Aligns a continuation with what was sent (see `OverlapTrimmer`)."""

    __slots__ = ()
