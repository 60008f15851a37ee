"""Continuing a stream on another endpoint after text was already sent.

Two ways, chosen per target:
- prefill: the partial answer goes in as a trailing assistant message and the model
  writes what follows it (Anthropic; vLLM, llama.cpp and most local servers when their
  endpoint says `prefill: supported`);
- instruct: the partial answer goes in as an assistant message followed by a short
  instruction to continue from its last words (OpenAI's API answers a trailing
  assistant message anew rather than continuing it).

Either way the continuation is verified before it reaches the caller: a
`ContinuationAligner` lines it up with what was sent and drops what repeats it, so the
caller never reads sent text twice nor a new answer glued onto cut-off words; what it
cannot line up with confidence fails the continuing attempt (`ContinuationMisaligned`).
"""

from __future__ import annotations

import math
from typing import Literal

from bastion.resilience.errors import ErrorKind, StreamBroken
from bastion.routing.alignment import Word, matched, restart_end, seam, words
from bastion.types import ChatRequest, Message

Mode = Literal["prefill", "instruct"]

CONTINUE_INSTRUCTION = (
    "Your previous answer was cut off mid-way. Continue it exactly where it stopped: "
    "begin with the last few words it ended on, then go on. Do not start the answer "
    "over, do not repeat anything before those words, and do not add a preface."
)

# A restart is told by the head of the continuation matching the head of what was sent:
# HEAD_SHARE of the first HEAD_WORDS words, in order. Below MIN_RESTART_WORDS sent words
# a head is too short to tell a restart from a coincidence, and only verbatim repeats
# count.
HEAD_WORDS = 8
HEAD_SHARE = 0.6
MIN_RESTART_WORDS = 4
# Words of a restart read past the end of what was sent before its seam is cut, so that
# a word still being changed is not mistaken for the end.
LOOKAHEAD = 3
# How far past the length of what was sent a continuation may be held while undecided.
HOLD_MARGIN = 400
# What may end a sentence; a new answer after one cannot be told from a continuation.
_SENTENCE_END = frozenset(".!?:;…\"'”’)]}*`")


def continuation_request(request: ChatRequest, sent: str, mode: Mode) -> ChatRequest:
    """`request` asking for what follows `sent`: with `sent` as a trailing assistant
    message (prefill), or followed by `CONTINUE_INSTRUCTION` (instruct)."""
    partial = Message(role="assistant", content=sent)
    if mode == "prefill":
        return request.with_messages((*request.messages, partial))
    instruction = Message(role="user", content=CONTINUE_INSTRUCTION)
    return request.with_messages((*request.messages, partial, instruction))


class ContinuationMisaligned(StreamBroken):
    """A continuation that cannot be lined up with the text already sent. Emitting it
    would repeat text or glue a new answer onto a cut one, so the continuing attempt
    fails instead (kind `protocol`): the stream moves on to another target, or ends
    with an error event."""

    def __init__(self, message: str, *, endpoint: str = "") -> None:
        super().__init__(ErrorKind.PROTOCOL, message, endpoint=endpoint)


class ContinuationAligner:
    """Feeds a continuation through, dropping whatever of it repeats what was sent.

    The continuation C is compared with the sent text S word by word (case and
    punctuation set aside, see `alignment`), and the first rule that applies decides:

    1. C opens by repeating the end of S verbatim (up to case, punctuation and
       spacing) — its last few words, a sentence, or all of S when C starts over word
       for word; S's last word may be a cut-off beginning of C's word: the repeat is
       dropped, the longest one if several fit.
    2. C starts over with changes — its first words match S's first words
       (`HEAD_SHARE` of `HEAD_WORDS`, so a changed word passes): S is located in C by
       word alignment (`alignment.restart_end`) and only what follows S's end is
       emitted. If S's end cannot be located — by the end of C, or once C has been
       held to the limit — C is misaligned.
    3. Neither: C continues S and is emitted whole — unless it reads as a new answer:
       S stops mid-sentence (no sentence-ending mark, no line break at its end) and C
       opens, with no space of its own, on a capitalised word other than "I" or a name
       S already used. That C is misaligned.

    C is also misaligned when it repeats a stretch of S (two words or more, or S's
    opening) and ends before reaching S's end. Nothing of a misaligned C is emitted.

    C's head is held only until the rule is decided: a few words when it continues
    cleanly, about len(S) when it starts over, never beyond len(S) plus
    max(`HOLD_MARGIN`, len(S)/4) characters. Then text passes straight through.
    `trimmed` counts the characters of C dropped as repeats.
    """

    __slots__ = (
        "_align_at",
        "_c",
        "_exact",
        "_failed",
        "_head",
        "_held",
        "_limit",
        "_mid_sentence",
        "_names",
        "_open",
        "_passing",
        "_s",
        "_scan",
        "_sent",
        "_spaced",
        "_tail",
        "trimmed",
    )

    def __init__(self, sent: str) -> None:
        found = words(sent)
        self._sent = sent
        self._s = [w.key for w in found]
        self._tail = sent[found[-1].start :] if found else ""
        self._spaced = sent[-1:].isspace()
        # S ends inside a word, which the continuation may complete or repeat whole.
        self._open = sent[-1:].isalnum()
        stripped = sent.rstrip()
        # A new line may open a heading or an item; spaces keep the sentence open.
        self._mid_sentence = bool(stripped) and "\n" not in sent[len(stripped) :]
        self._mid_sentence &= stripped[-1:] not in _SENTENCE_END
        self._names = {w.key for w in found[1:] if sent[w.start].isupper()}
        self._limit = len(sent) + max(HOLD_MARGIN, len(sent) // 4)
        self._held = ""
        self._scan = 0
        self._c: list[Word] = []
        self._exact: list[int] = []
        self._head: bool | None = None
        self._align_at = len(self._s) + LOOKAHEAD
        self._passing = not self._s  # nothing to repeat: everything is new
        self._failed = False
        self.trimmed = 0

    def feed(self, text: str) -> str:
        """The part of the continuation safe to emit now (possibly ""); raises
        `ContinuationMisaligned` as soon as the continuation is known not to fit."""
        if self._passing:
            return text
        if self._failed:
            return ""
        start = len(self._held)
        self._held += text
        self._read(start, final=False)
        return self._decide(final=False)

    def flush(self) -> str:
        """The rest, once the continuation has ended normally; raises
        `ContinuationMisaligned` if what was held cannot be lined up."""
        if self._passing or self._failed:
            return ""
        self._read(len(self._held), final=True)
        return self._decide(final=True)

    # --- reading -------------------------------------------------------------------

    def _read(self, start: int, *, final: bool) -> None:
        """Take in the words completed by the text from `start` on (all, at the end). A
        word counts once the next one begins, so that the whitespace after it is known
        whole when a seam is cut there."""
        end = len(self._held) if final else _last_word_start(self._held, max(start, self._scan))
        if end <= self._scan:
            return
        new = words(self._held, self._scan, end)
        self._scan = end
        for word in new:
            t = len(self._c)
            self._c.append(word)
            if t == 0:
                self._exact = [i for i in range(len(self._s)) if self._fits(i, 0)]
            else:
                n = len(self._s)
                self._exact = [i for i in self._exact if i + t >= n or self._fits(i, t)]

    def _fits(self, i: int, t: int) -> bool:
        """Whether word `t` of C repeats word `i + t` of S."""
        index = i + t
        mine, theirs = self._s[index], self._c[t]
        if mine == theirs.key:
            return True
        # The last sent word may have been cut: C repeats it whole. A first word after a
        # space is a new word, not the cut one; and one cut-off letter is too weak a
        # sign, unless C starts the answer over or it is a capital (a clean
        # continuation of "E" goes on in lower case).
        if index != len(self._s) - 1 or not self._open or not theirs.key.startswith(mine):
            return False
        if t == 0:
            capital = self._sent[-1].isupper() and self._held[0] == self._sent[-1]
            return theirs.start == 0 and (len(mine) >= 2 or i == 0 or capital)
        return True

    # --- deciding ------------------------------------------------------------------

    def _decide(self, *, final: bool) -> str:
        done = final or len(self._held) > self._limit
        if not self._c and not done:
            return ""
        n, k = len(self._s), len(self._c)
        # A verbatim repeat (rule 1: of the end, or a restart word for word) is the
        # surest sign: read it to its end before anything else is judged.
        pending = [i for i in self._exact if n - i > k]
        if pending and not done:
            return ""
        complete = [i for i in self._exact if n - i <= k]
        best = min(complete) if complete else None
        if best is not None and n - best >= 2:
            return self._release(self._seam(n - 1 - best))
        if pending and (k >= 2 or 0 in pending):
            raise self._fail("it repeats part of what was sent and stops before its end")
        head = self._starts_over(done)
        if head is None:
            return ""
        if head:
            return self._restart(done)
        # One repeated word is weaker than a restart: it counts once that is ruled out.
        if best is not None:
            return self._release(self._seam(n - 1 - best))
        if self._new_answer():
            raise self._fail("it reads as a new answer, not a continuation")
        return self._release(0)

    def _starts_over(self, done: bool) -> bool | None:
        """Whether C's head matches S's head; None while that is still open."""
        if self._head is None:
            n, k = len(self._s), len(self._c)
            width = min(HEAD_WORDS, n)
            need = math.ceil(HEAD_SHARE * width)
            got = matched(self._s[:width], [w.key for w in self._c[:width]])
            if n < MIN_RESTART_WORDS or got + max(0, width - k) < need:
                self._head = False
            elif k >= width or done:
                self._head = got >= need
        return self._head

    def _restart(self, done: bool) -> str:
        k = len(self._c)
        if k >= self._align_at or done:
            end = restart_end(self._s, [w.key for w in self._c], open_end=self._open)
            if end is not None and (done or k > end + LOOKAHEAD):
                return self._release(self._seam(end))
            if done:
                raise self._fail("it starts over, and where it passes what was sent is unclear")
            self._align_at = k + max(LOOKAHEAD, len(self._s) // 8)
        return ""

    def _new_answer(self) -> bool:
        if not self._mid_sentence or not self._held[:1].isupper():
            return False
        first = self._held.split(maxsplit=1)[0]
        if first == "I" or first[:2] in ("I'", "I’"):
            return False
        return self._c[0].key not in self._names

    def _seam(self, index: int) -> int:
        word = self._c[index]
        return seam(self._tail, self._held, word.start, word.end, self._spaced)

    def _release(self, cut: int) -> str:
        out = self._held[cut:]
        self.trimmed = cut
        self._passing = True
        self._held = ""
        self._c = []
        self._exact = []
        return out

    def _fail(self, reason: str) -> ContinuationMisaligned:
        self._failed = True
        self._held = ""
        return ContinuationMisaligned(
            f"the continuation does not fit the {len(self._sent)} characters already sent: {reason}"
        )


def _last_word_start(text: str, low: int) -> int:
    """Where the last token that follows whitespace begins, at or after `low`; -1 if
    none. What lies before it is complete words and complete runs of whitespace."""
    for i in range(len(text) - 1, max(low, 1) - 1, -1):
        if text[i - 1].isspace() and not text[i].isspace():
            return i
    return -1
