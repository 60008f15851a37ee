"""The continuation aligner: whatever the continuing model does, the caller reads the
answer once — or the continuation is refused, never glued on."""

from __future__ import annotations

import re
from dataclasses import dataclass

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bastion import ErrorKind
from bastion.resilience.errors import StreamBroken
from bastion.routing.continuation import (
    HEAD_WORDS,
    ContinuationAligner,
    ContinuationMisaligned,
)

# --- driving the aligner -----------------------------------------------------------------


@dataclass
class Fed:
    """What the caller read after `sent`: the emitted pieces, or the refusal."""

    sent: str
    cont: str
    pieces: list[str]
    trimmed: int
    error: ContinuationMisaligned | None = None

    @property
    def emitted(self) -> str:
        return "".join(self.pieces)

    @property
    def client(self) -> str:
        return self.sent + self.emitted


def feed(sent: str, cont: str, sizes: list[int] | None = None) -> Fed:
    """Feed `cont` in chunks of `sizes` (cycled), then flush."""
    sizes = sizes or [5]
    aligner = ContinuationAligner(sent)
    pieces: list[str] = []
    at, turn = 0, 0
    try:
        while at < len(cont):
            size = sizes[turn % len(sizes)]
            pieces.append(aligner.feed(cont[at : at + size]))
            at, turn = at + size, turn + 1
        pieces.append(aligner.flush())
    except ContinuationMisaligned as exc:
        return Fed(sent, cont, pieces, aligner.trimmed, exc)
    return Fed(sent, cont, pieces, aligner.trimmed)


def aligned(sent: str, cont: str, sizes: list[int] | None = None) -> Fed:
    fed = feed(sent, cont, sizes)
    assert fed.error is None, fed.error
    return fed


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


# --- behaviours, by example ----------------------------------------------------------------

SENT = "The quick brown fox jumps over the lazy dog and runs far away into the wo"
REST = "ods. It was never seen again by anyone in the village."
ANSWER = SENT + REST


def test_a_continuation_that_repeats_the_cut_word_whole_is_joined_inside_it():
    assert aligned(SENT, "into the woods. It was").client == ANSWER[: len(SENT) + 11]


def test_a_model_that_repeats_two_words_after_a_space_joins_without_a_double_space():
    fed = aligned("The quick brown fox ", "brown fox jumps over")
    assert fed.client == "The quick brown fox jumps over"


def test_a_repeat_with_other_punctuation_keeps_the_sent_punctuation():
    fed = aligned("It was over. The fox", "over, the fox ran home.")
    assert fed.client == "It was over. The fox ran home."


def test_a_repeat_opened_with_an_ellipsis_is_dropped_whole():
    fed = aligned("It jumped over the lazy", "...lazy dog and ran.")
    assert fed.client == "It jumped over the lazy dog and ran."


def test_a_single_repeated_word_is_dropped():
    assert aligned("and then I", "I ran home.").client == "and then I ran home."


def test_a_first_word_after_a_space_is_not_taken_for_the_rest_of_a_cut_word():
    # "an" and " and": a new word, not the cut one.
    assert aligned("It was an", " and then").client == "It was an and then"


def test_a_restart_with_a_changed_last_word_maps_it_by_position():
    sent = "The quick brown fox jumps over the lazy dog and runs"
    cont = "The quick brown fox jumps over the lazy dog and ran far away. The end."
    assert aligned(sent, cont).client == sent + " far away. The end."


def test_a_restart_with_a_word_inserted_at_the_end_is_refused():
    sent = "The quick brown fox jumps over the lazy dog and runs"
    cont = "The quick brown fox jumps over the lazy old dog, then walks far away. " * 3
    assert feed(sent, cont).error is not None


def test_a_new_answer_after_a_mid_sentence_cut_is_refused_at_once():
    aligner = ContinuationAligner("The capital of France is")
    answer = "Sure! Here is a short overview of France and its capital city."
    fed = 0
    with pytest.raises(ContinuationMisaligned, match="new answer"):
        for word in answer.split():
            fed += 1
            assert aligner.feed(word + " ") == ""
    assert fed <= HEAD_WORDS // 2 + 1
    assert aligner.flush() == ""


def test_a_new_answer_after_a_cut_between_two_words_is_refused():
    assert feed("It jumped over the lazy ", "Sure! Foxes are small mammals.").error is not None


def test_a_capital_after_a_line_break_may_continue():
    assert aligned("Shopping list\n", "Apples and pears.").emitted == "Apples and pears."


def test_a_name_used_before_may_open_the_continuation():
    assert aligned("We met Anna and", "Anna smiled.").emitted == "Anna smiled."
    assert aligned("and then", "I left.").emitted == "I left."


def test_a_continuation_that_repeats_a_stretch_and_stops_short_is_refused():
    sent = "The quick brown fox jumps over the lazy dog and runs far away"
    assert feed(sent, "over the lazy dog").error is not None


def test_a_restart_that_ends_where_the_sent_text_ended_adds_nothing():
    sent = "The quick brown fox jumps over the lazy dog."
    fed = aligned(sent, sent)
    assert fed.emitted == "" and fed.trimmed == len(sent)


def test_a_restart_is_held_until_it_passes_the_sent_text_then_streams():
    sent = "One two three four five six seven eight nine ten"
    aligner = ContinuationAligner(sent)
    assert aligner.feed("one two three four five six seven eight nine ") == ""
    assert aligner.feed("ten eleven ") == " eleven "
    assert aligner.feed("twelve") == "twelve"
    assert aligner.trimmed == len(sent)


def test_the_misalignment_is_a_protocol_failure_of_the_continuing_attempt():
    fed = feed("The capital of France is", "Sure! France is a country in Europe.")
    assert isinstance(fed.error, StreamBroken)
    assert fed.error.kind is ErrorKind.PROTOCOL
    # It names the problem, never the text.
    assert "France" not in str(fed.error)


def test_text_with_no_words_sent_passes_through():
    assert aligned("— ", "Hello there.").client == "— Hello there."


@pytest.mark.parametrize(
    ("sent", "cont", "client"),
    [
        ("The quick brown fox", " brown fox jumps", "The quick brown fox jumps"),
        ("The quick brown fox ju", "brown fox jumps", "The quick brown fox jumps"),
        ("The quick brown fox", " jumps over", "The quick brown fox jumps over"),
        ("T", "The quick fox", "The quick fox"),
    ],
)
def test_the_seam_between_what_was_sent_and_the_continuation(sent, cont, client):
    assert aligned(sent, cont).client == client


def test_a_long_restart_with_changes_is_placed_by_its_last_words():
    answer = " ".join(f"word{i}" + ("." if i % 9 == 8 else "") for i in range(1500))
    cut = answer.index("word1000 ") + len("word10")
    sent = answer[:cut]
    restart = answer.replace("word3 ", "changed ").replace("word500 ", "").replace("word998", "w")
    fed = aligned(sent, restart, [7])
    assert fed.client == answer


def test_a_long_restart_that_tells_another_ending_is_refused():
    answer = " ".join(f"word{i}" for i in range(1500))
    sent = answer[: answer.index("word1000 ")]
    other = answer[: answer.index("word900 ")] + " ".join(f"other{i}" for i in range(400))
    assert feed(sent, other, [7]).error is not None
