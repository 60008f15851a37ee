"""Properties of the continuation aligner, over generated answers, cuts, continuations
of every kind and chunkings: the caller reads the answer once, or the continuation is
refused — never glued on."""

from __future__ import annotations

import re

from continuation_support import aligned, feed
from hypothesis import given, settings
from hypothesis import strategies as st

from bastion.routing.continuation import HEAD_WORDS

# --- generated answers -------------------------------------------------------------------

_WORDS = re.findall(
    r"\w+",
    """
apple river stone cloud garden market window silver forest engine bridge candle
harbor meadow pencil rocket summer winter valley planet thunder orange castle mirror
basket ladder island jacket kettle lantern marble needle ocean pepper quartz saddle
tunnel violin wagon yellow zipper anchor blanket cactus dragon falcon glacier hammer
igloo jungle koala lemon magnet nectar oyster parrot quiver raven shadow tiger
umbrella velvet walrus yogurt acorn bubble copper desert ember feather goblet hazel
ivory jasmine kernel lizard mango nickel orchid pebble quill ribbon spruce tulip
unicorn vessel willow yarrow badger cobalt dagger eagle fossil gravel harvest insect
jigsaw kitten locket mittens noodle olive puzzle riddle salmon timber urchin vapor
waffle bright quiet rapid gentle silent humble clever eager fancy jolly lively
mighty narrow polite proud swift tender vivid wild brave calm fierce jumps runs
sings builds carries finds holds keeps makes opens paints reads sees takes walks
""",
)


def _ambiguous(word: str) -> bool:
    """A word that, cut in two, could read as its first part repeated: "murmur" cut
    after "mur" continues "mur…". Such text is ambiguous for any aligner."""
    return any(
        word[i:] == word[:i] or (i >= 2 and word[i:].startswith(word[:i]))
        for i in range(1, len(word))
    )


VOCAB = [w for w in dict.fromkeys(_WORDS) if not _ambiguous(w)]


COMMON = ["the", "of", "and", "to", "in", "is", "it"]


@st.composite
def answers(draw: st.DrawFn, min_words: int = 3, common: bool = False) -> tuple[str, list[str]]:
    """An answer of sentences over distinct words (so no phrase repeats by chance) —
    with `common`, common words between them, which do repeat — and the words it left
    unused (for edits and unrelated answers)."""
    chosen = draw(st.lists(st.sampled_from(VOCAB), min_size=min_words, max_size=45, unique=True))
    sentences, i = [], 0
    while i < len(chosen):
        size = draw(st.integers(2, 9))
        part = chosen[i : i + size]
        i += size
        if common:
            part = [
                f"{draw(st.sampled_from(COMMON))} {word}" if n and draw(st.booleans()) else word
                for n, word in enumerate(part)
            ]
        part[0] = part[0].capitalize()
        if len(part) > 3 and draw(st.booleans()):
            part[1] += ","
        sentences.append(" ".join(part) + draw(st.sampled_from(".!?")))
    text = sentences[0]
    for sentence in sentences[1:]:
        text += draw(st.sampled_from([" ", " ", "\n\n"])) + sentence
    unused = [w for w in VOCAB if w not in set(chosen)]
    return text, unused


def token_starts(text: str) -> list[int]:
    return [m.start() for m in re.finditer(r"\S+", text)]


def sentence_start(answer: str, cut: int) -> int:
    """Where the sentence the sent text ends in begins (the one before, if the sent
    text ends between sentences)."""
    ends = len(answer[:cut].rstrip())
    starts = [0] + [m.end() for m in re.finditer(r"[.!?]\s+", answer)]
    return max(s for s in starts if s < ends)


def cut_fragment(answer: str, cut: int) -> str:
    """The part of a word the cut left at the end of the sent text ("" if none)."""
    if cut >= len(answer) or answer[cut - 1].isspace() or answer[cut].isspace():
        return ""
    return answer[token_starts(answer[:cut])[-1] : cut]


@st.composite
def cuts(draw: st.DrawFn, min_words: int = 3, common: bool = False) -> tuple[str, int, list[str]]:
    answer, unused = draw(answers(min_words, common))
    cut = draw(st.integers(1, len(answer) - 1))
    return answer, cut, unused


chunkings = st.lists(st.integers(1, 13), min_size=1, max_size=6)


# --- properties --------------------------------------------------------------------------


@settings(max_examples=150)
@given(cuts(), chunkings)
def test_a_clean_continuation_passes_whole_and_is_released_within_a_few_words(case, sizes):
    answer, cut, _ = case
    sent, cont = answer[:cut], answer[cut:]
    fed = aligned(sent, cont, sizes)
    assert fed.client == answer and fed.trimmed == 0
    # The hold is bounded: something is out once HEAD_WORDS + 1 more words came in.
    out_at = next((i for i, piece in enumerate(fed.pieces) if piece), len(fed.pieces))
    fed_before = cont[: sum(sizes[i % len(sizes)] for i in range(out_at))]
    assert len(fed_before.split()) <= HEAD_WORDS + 2


def repeating(answer: str, cut: int, k: int) -> str:
    """A continuation that first repeats the last `k` words sent."""
    starts = token_starts(answer[:cut])
    # One cut-off letter repeated alone reads like a new word: ask for a word more.
    if len(re.sub(r"\W", "", cut_fragment(answer, cut))) < 2 and len(starts) > 1:
        k = max(k, 2)
    return answer[starts[-min(k, len(starts))] :]


@settings(max_examples=150)
@given(cuts(), st.integers(1, 6), chunkings)
def test_repeating_the_last_words_is_trimmed(case, k, sizes):
    answer, cut, _ = case
    sent = answer[:cut]
    cont = repeating(answer, cut, k)
    fed = aligned(sent, cont, sizes)
    assert fed.client == answer
    assert fed.emitted == cont[fed.trimmed :]


@settings(max_examples=150)
@given(cuts(), chunkings)
def test_repeating_the_last_sentence_is_trimmed(case, sizes):
    answer, cut, _ = case
    sent = answer[:cut]
    cont = answer[sentence_start(answer, cut) :]
    fed = aligned(sent, cont, sizes)
    assert fed.client == answer


@settings(max_examples=150)
@given(cuts(), chunkings)
def test_starting_over_word_for_word_emits_only_what_follows_the_sent_text(case, sizes):
    answer, cut, _ = case
    fed = aligned(answer[:cut], answer, sizes)
    assert fed.client == answer
    assert fed.trimmed == cut


@settings(max_examples=150)
@given(
    cuts(common=True),
    st.sampled_from(["clean", "repeat", "sentence", "restart"]),
    st.integers(1, 6),
    chunkings,
)
def test_common_words_that_recur_do_not_mislead_the_alignment(case, kind, k, sizes):
    answer, cut, _ = case
    start = {
        "clean": cut,
        "repeat": len(answer) - len(repeating(answer, cut, k)),
        "sentence": sentence_start(answer, cut),
        "restart": 0,
    }[kind]
    assert aligned(answer[:cut], answer[start:], sizes).client == answer


@st.composite
def reworded(draw: st.DrawFn) -> tuple[str, int, str]:
    """An answer, a cut with at least 8 words sent, and a restart that changes case,
    punctuation, spacing and up to two words of the sent part — but not its last three
    words, which is where the seam has to be found."""
    answer, cut, unused = draw(cuts(min_words=10))
    sent = answer[:cut]
    starts = token_starts(sent)
    if len(starts) < 9:
        cut = token_starts(answer)[8] + 1
        sent = answer[:cut]
        starts = token_starts(sent)
    tokens = re.findall(r"\S+|\s+", sent[: starts[-3]])
    editable = [i for i, t in enumerate(tokens) if not t.isspace()]
    replaced = draw(st.lists(st.sampled_from(editable), max_size=2, unique=True))
    for i in editable:
        token = tokens[i]
        if i in replaced:
            token = draw(st.sampled_from(unused)) + re.sub(r"\w", "", token)
        edit = draw(st.sampled_from(["keep", "keep", "case", "comma", "strip"]))
        if edit == "case":
            token = token.swapcase()
        elif edit == "comma":
            token += ","
        elif edit == "strip":
            token = token.rstrip(",.!?") or token
        tokens[i] = token
    spaces = [i for i, t in enumerate(tokens) if t.isspace()]
    for i in draw(st.lists(st.sampled_from(spaces), max_size=3, unique=True)) if spaces else []:
        tokens[i] = draw(st.sampled_from(["  ", "\n", " \n "]))
    return answer, cut, "".join(tokens) + answer[starts[-3] :]


@settings(max_examples=150)
@given(reworded(), chunkings)
def test_starting_over_with_small_changes_emits_only_what_follows_the_sent_text(case, sizes):
    answer, cut, cont = case
    sent = answer[:cut]
    fed = aligned(sent, cont, sizes)
    assert fed.emitted == cont[fed.trimmed :]
    assert fed.client == answer
    assert fed.client.count(sent) == 1


@st.composite
def unrelated(draw: st.DrawFn) -> tuple[str, str, str]:
    """A sent part, and a continuation that is another answer altogether."""
    answer, cut, unused = draw(cuts())
    other = draw(st.lists(st.sampled_from(unused), min_size=3, max_size=30, unique=True))
    other[0] = other[0].capitalize()
    return answer, answer[:cut], " ".join(other) + "."


@settings(max_examples=150)
@given(unrelated(), chunkings)
def test_another_answer_is_refused_or_reads_on_without_repeating_anything(case, sizes):
    _, sent, cont = case
    fed = feed(sent, cont, sizes)
    if fed.error is None:
        assert fed.emitted == cont[fed.trimmed :]
        # Nothing of the sent words comes back (a cut-off fragment may be completed).
        assert not any(word in fed.emitted for word in sent.split()[:-1])


@st.composite
def diverging(draw: st.DrawFn) -> tuple[str, str, str]:
    """A restart that follows the sent part for a while, then tells another story
    before reaching the sent part's last three words."""
    answer, cut, unused = draw(cuts(min_words=12))
    starts = token_starts(answer)
    sent_words = len(token_starts(answer[:cut]))
    if sent_words < 8:
        cut, sent_words = starts[8] + 1, 9
    keep = draw(st.integers(5, sent_words - 3))
    other = draw(st.lists(st.sampled_from(unused), min_size=sent_words, unique=True))
    return answer, answer[:cut], answer[: starts[keep]] + " ".join(other) + "."


@settings(max_examples=100)
@given(diverging(), chunkings)
def test_a_restart_that_diverges_before_the_seam_is_refused(case, sizes):
    _, sent, cont = case
    fed = feed(sent, cont, sizes)
    assert fed.error is not None
    assert fed.emitted == ""
