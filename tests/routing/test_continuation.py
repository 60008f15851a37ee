"""The continuation aligner by example, one behaviour each (the properties over
generated answers are in test_continuation_properties.py)."""

from __future__ import annotations

import pytest
from continuation_support import aligned, feed

from bastion import ErrorKind
from bastion.resilience.errors import StreamBroken
from bastion.routing.continuation import (
    HEAD_WORDS,
    ContinuationAligner,
    ContinuationMisaligned,
)

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
