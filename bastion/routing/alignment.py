"""Lining a continuation up with the text already sent, word by word (pure functions).

A *word* is a run of non-whitespace characters reduced to its letters and digits,
casefolded: "Dog," and "dog." are one word, "—" is none. Comparing words rather than
characters lets a restart that changed punctuation, case or spacing still line up with
what was sent; `seam` then finds the exact character where the repeat ends.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from difflib import SequenceMatcher

_TOKEN = re.compile(r"\S+")

# A restart is located when at least this share of the sent words is found in it, in
# order: a changed word or two in a paragraph passes, a rewritten answer does not.
ALIGN_SHARE = 0.75
# How many of the last sent words are looked at to place the end of what was sent, how
# many of them may be replaced (a changed last word still maps by position), and how
# many must be matched.
TAIL_WORDS = 6
MAX_REPLACED = 2
TAIL_SHARE = 2 / 3
# Sent words aligned at most (see `restart_end`).
WINDOW = 300


@dataclass(frozen=True, slots=True)
class Word:
    """A word and where its token (punctuation included) lies in its text."""

    key: str
    start: int
    end: int


def words(text: str, start: int = 0, end: int | None = None) -> list[Word]:
    """The words of `text[start:end]`; tokens with no letter or digit are left out."""
    found = []
    for token in _TOKEN.finditer(text, start, len(text) if end is None else end):
        key = "".join(ch for ch in token.group().casefold() if ch.isalnum())
        if key:
            found.append(Word(key, token.start(), token.end()))
    return found


def matched(a: Sequence[str], b: Sequence[str]) -> int:
    """How many words of `a` are found in `b`, in order."""
    blocks = SequenceMatcher(None, a, b, autojunk=False).get_matching_blocks()
    return sum(block.size for block in blocks)


def restart_end(sent: Sequence[str], cont: Sequence[str], *, open_end: bool = False) -> int | None:
    """The index of the word of `cont` (a continuation that started over) that stands
    for the last word of `sent`, or None when it cannot be placed with confidence.

    Placed means: at least `ALIGN_SHARE` of the sent words are found in `cont` in order,
    and either the last two sent words are found side by side, or at most
    `MAX_REPLACED` last words were replaced and the last `TAIL_WORDS` sent words are
    mostly found (`TAIL_SHARE`) at one steady offset, so the replaced ones map by
    position. Words inserted or dropped near the end leave it unplaced. With
    `open_end` (the sent text stopped inside its last word) that word also counts as
    found where `cont` has a word beginning with it.

    Only the last `WINDOW` sent words are aligned, against the part of `cont` where
    they can be (from `WINDOW` / 2 words before where they would start unchanged): what
    matters is where the sent text ends, and word alignment costs up to the product of
    the two lengths. The head of a restart is checked apart (`ContinuationAligner`).
    """
    if len(sent) <= WINDOW:
        return _place_end(sent, cont, open_end)
    start = len(sent) - WINDOW
    low = max(0, start - WINDOW // 2)
    end = _place_end(sent[start:], cont[low:], open_end)
    return None if end is None else low + end


def _place_end(sent: Sequence[str], cont: Sequence[str], open_end: bool) -> int | None:
    """`restart_end` over all of `sent`."""
    n = len(sent)
    blocks = [b for b in SequenceMatcher(None, sent, cont, autojunk=False).get_matching_blocks()]
    blocks = [b for b in blocks if b.size]
    if not blocks:
        return None
    last = blocks[-1]
    gap = n - (last.a + last.size)
    after = last.b + last.size
    completed = open_end and gap == 1 and after < len(cont) and cont[after].startswith(sent[-1])
    if sum(b.size for b in blocks) + completed < ALIGN_SHARE * n:
        return None
    if completed:
        return after
    if gap == 0 and last.size >= min(2, n):
        return last.b + last.size - 1
    if gap > MAX_REPLACED:
        return None
    low = max(0, n - TAIL_WORDS)
    near = [b for b in blocks if b.a + b.size > low]
    if len({b.b - b.a for b in near}) != 1:
        return None
    found = sum(b.a + b.size - max(b.a, low) for b in near)
    if found < TAIL_SHARE * (n - low):
        return None
    end = n - 1 + last.b - last.a
    return end if end < len(cont) else None


def seam(tail: str, text: str, start: int, token_end: int, spaced: bool) -> int:
    """Where the repeat of what was sent ends in `text`, a character index.

    `tail` is the sent text from its last word on ("lazy dog. "), `start` where the
    matching word of `text` begins and `token_end` where its token ends. The two are
    walked side by side, letters compared without case and whitespace runs taken as
    equal (but when the sent text stopped inside a run, only its part of the run is
    dropped); when `tail` is used up the seam is found. Where they differ (a changed last
    word or punctuation) the seam is after the word and its punctuation, and after the
    whitespace that follows when the sent text already ended in whitespace (`spaced`).
    """
    # Marks that open either word ("...lazy", "*lazy") are not part of the comparison.
    a, b = _skip_marks(tail, 0), _skip_marks(text, start)
    while a < len(tail):
        if tail[a].isspace() or (b < len(text) and text[b].isspace()):
            after_a, after_b = _skip_space(tail, a), _skip_space(text, b)
            if after_a == len(tail) and text.startswith(tail[a:], b):
                return b + len(tail) - a  # sent stopped inside this run: keep the rest
            a, b = after_a, after_b
        elif b < len(text) and tail[a].lower() == text[b].lower():
            a, b = a + 1, b + 1
        else:
            if b < len(text) and text[b].isalnum():
                b = max(b, token_end)
            b = _skip_marks(text, b)
            return _skip_space(text, b) if spaced else b
    return b


def _skip_marks(text: str, i: int) -> int:
    """Past the punctuation (neither letter, digit nor space) from `i` on."""
    while i < len(text) and not text[i].isalnum() and not text[i].isspace():
        i += 1
    return i


def _skip_space(text: str, i: int) -> int:
    while i < len(text) and text[i].isspace():
        i += 1
    return i
