"""The rules, without sockets: continuation, flapping, where a glitch falls."""

from __future__ import annotations

import pytest

from bastion.testing import Fault, FaultError
from bastion.testing.exchange import steps
from bastion.testing.plan import (
    Answer,
    ErrorReply,
    Incoming,
    Schedule,
    Settings,
    Turn,
    answer_text,
    decide,
    effective,
)

T = "The quick brown fox jumps over the lazy dog."
SETTINGS = Settings(text=T)


def turns(*pairs: tuple[str, str]) -> tuple[Turn, ...]:
    return tuple(Turn(role, text) for role, text in pairs)


def request(*pairs: tuple[str, str]) -> Incoming:
    return Incoming("openai", "m", True, turns(*pairs), False, {})


def test_a_fresh_question_gets_the_whole_text() -> None:
    assert answer_text(T, turns(("user", "hi")), SETTINGS) == T


def test_a_prefill_is_continued_from_where_it_ends() -> None:
    got = answer_text(T, turns(("user", "hi"), ("assistant", "The quick bro")), SETTINGS)
    assert got == "wn fox jumps over the lazy dog."


def test_a_prefill_that_is_not_a_prefix_gets_the_whole_text() -> None:
    assert answer_text(T, turns(("user", "hi"), ("assistant", "Once upon")), SETTINGS) == T


def test_an_upstream_that_ignores_prefill_answers_afresh() -> None:
    settings = Settings(text=T, prefill="ignore")
    assert answer_text(T, turns(("user", "hi"), ("assistant", "The quick")), settings) == T


def test_please_continue_repeats_the_last_three_words_of_the_partial() -> None:
    partial = "The quick brown fox jum"
    got = answer_text(T, turns(("user", "hi"), ("assistant", partial), ("user", "go on")), SETTINGS)
    assert got == "brown fox jumps over the lazy dog."


def test_overlap_words_sets_how_much_is_repeated() -> None:
    partial = "The quick brown fox "
    one = Settings(text=T, overlap_words=1)
    none = Settings(text=T, overlap_words=0)
    history = turns(("user", "hi"), ("assistant", partial), ("user", "go on"))
    assert answer_text(T, history, one) == "fox jumps over the lazy dog."
    assert answer_text(T, history, none) == "jumps over the lazy dog."


def test_a_complete_earlier_answer_is_not_taken_for_a_partial_one() -> None:
    history = turns(("user", "hi"), ("assistant", T), ("user", "and then?"))
    assert answer_text(T, history, SETTINGS) == T


def test_reject_prefill_refuses_only_requests_that_end_with_an_assistant_message() -> None:
    fault = Fault.reject_prefill()
    with_prefill = request(("user", "hi"), ("assistant", "The"))
    kind, plan = decide(fault, 0.0, with_prefill, SETTINGS, now=0.0, wall_now=0.0)
    assert (kind, plan) == ("reject_prefill", ErrorReply(400, "prefill"))
    kind, plan = decide(fault, 0.0, request(("user", "hi")), SETTINGS, now=0.0, wall_now=0.0)
    assert kind == "ok"
    assert isinstance(plan, Answer)


def test_context_length_with_max_chars_accepts_short_prompts() -> None:
    fault = Fault.context_length(max_chars=10)
    short, long = request(("user", "hi")), request(("user", "x" * 11))
    assert decide(fault, 0.0, short, SETTINGS, now=0.0, wall_now=0.0)[0] == "ok"
    assert decide(fault, 0.0, long, SETTINGS, now=0.0, wall_now=0.0)[0] == "context_length"


def test_flapping_is_down_for_its_window_then_up() -> None:
    fault = Fault.flapping(2.0)
    assert effective(fault, set_at=10.0, now=11.9) == Fault.status(503)
    assert effective(fault, set_at=10.0, now=12.0) == Fault.ok()


def test_flapping_with_up_for_cycles() -> None:
    fault = Fault.flapping(1.0, down=Fault.reset(), up_for=1.0)
    states = [effective(fault, set_at=0.0, now=t).kind for t in (0.5, 1.5, 2.5, 3.5)]
    assert states == ["reset", "ok", "reset", "ok"]


def test_retry_after_as_a_date_is_an_http_date_in_the_future() -> None:
    fault = Fault.status(429, retry_after=5, retry_after_date=True)
    _, plan = decide(fault, 0.0, request(("user", "hi")), SETTINGS, now=0.0, wall_now=0.0)
    assert isinstance(plan, ErrorReply)
    assert plan.headers == (("Retry-After", "Thu, 01 Jan 1970 00:00:05 GMT"),)


def test_the_glitch_falls_exactly_after_the_given_chars() -> None:
    answer = Answer(text="abcdefghij", chunk_chars=4, glitch=Fault.cut(6))
    assert [(s.kind, s.value) for s in steps(answer)] == [
        ("text", "abcd"),
        ("text", "ef"),
        ("glitch", ""),
        ("text", "ghij"),
    ]


def test_a_glitch_beyond_the_text_falls_at_its_end() -> None:
    answer = Answer(text="abc", chunk_chars=8, glitch=Fault.malformed(99))
    assert [s.kind for s in steps(answer)] == ["text", "glitch"]


def test_tool_call_arguments_count_as_content_chars() -> None:
    answer = Answer(text="", tool_calls=(("f", '{"a": 1}'),), chunk_chars=3, glitch=Fault.cut(4))
    assert [(s.kind, s.value) for s in steps(answer)] == [
        ("tool", "f"),
        ("args", '{"a'),
        ("args", '"'),
        ("glitch", ""),
        ("args", ": 1"),
        ("args", "}"),
    ]


def test_queued_faults_for_the_model_come_before_any_model_then_the_default() -> None:
    schedule = Schedule(now=0.0)
    schedule.set_default(Fault.hang(), None, now=0.0)
    schedule.push((Fault.reset(),), None, now=0.0)
    schedule.push((Fault.cut(1),), "big", now=0.0)
    taken = [schedule.take("big")[0].kind for _ in range(3)]
    assert taken == ["cut", "reset", "hang"]


# --- how a cut answer is continued -------------------------------------------------------

LONG = "The fox ran. It jumped over the lazy dog and went home. Then it slept."


def please_continue(partial: str, settings: Settings) -> str:
    history = turns(("user", "hi"), ("assistant", partial), ("user", "go on"))
    return answer_text(LONG, history, settings)


def test_instruct_continue_answers_with_exactly_the_rest() -> None:
    settings = Settings(text=LONG, instruct="continue")
    assert please_continue("The fox ran. It jum", settings) == LONG[len("The fox ran. It jum") :]


def test_instruct_sentence_repeats_the_sentence_it_stopped_in() -> None:
    settings = Settings(text=LONG, instruct="sentence")
    assert please_continue("The fox ran. It jumped ov", settings) == LONG[len("The fox ran. ") :]
    # Stopped between two sentences: the one before is repeated.
    assert (
        please_continue("The fox ran. It jumped over the lazy dog and went home. ", settings)
        == (LONG[len("The fox ran. ") :])
    )


def test_instruct_restart_starts_the_answer_over() -> None:
    assert please_continue("The fox ran. It", Settings(text=LONG, instruct="restart")) == LONG


def test_instruct_reword_starts_over_with_small_changes_before_the_last_three_words() -> None:
    partial = "The fox ran. It jumped over the la"
    got = please_continue(partial, Settings(text=LONG, instruct="reword"))
    assert got == "the  fox indeed. It jumped over the lazy dog and went home. Then it slept."
    assert got.endswith(LONG[len("The fox ran. It jumped ") :])


def test_reword_leaves_a_short_partial_as_it_was() -> None:
    assert please_continue("The fox", Settings(text=LONG, instruct="reword")) == LONG


def test_an_upstream_that_ignores_prefill_starts_over_even_when_asked_by_instruction_to_go_on() -> (
    None
):
    # Ignoring a prefill says nothing about instructions: those follow `instruct`.
    settings = Settings(text=LONG, prefill="ignore", instruct="continue")
    assert please_continue("The fox ran.", settings) == LONG[len("The fox ran.") :]
    prefilled = turns(("user", "hi"), ("assistant", "The fox ran."))
    assert answer_text(LONG, prefilled, settings) == LONG


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"instruct": "paraphrase"}, "instruct"),
        ({"prefill": "maybe"}, "prefill"),
        ({"overlap_words": -1}, "overlap_words"),
        ({"overlap_words": "3"}, "overlap_words"),
        ({"instruct": 3}, "instruct"),
        ({"speed": "fast"}, "speed"),
    ],
)
def test_a_bad_continuation_setting_names_its_field(changes, field) -> None:
    with pytest.raises(FaultError) as caught:
        SETTINGS.with_continuation(changes)
    assert caught.value.field == field


def test_continuation_settings_change_only_what_is_given() -> None:
    changed = SETTINGS.with_continuation({"instruct": "restart"})
    assert changed.continuation() == {
        "prefill": "continue",
        "instruct": "restart",
        "overlap_words": 3,
    }
    assert changed.text == SETTINGS.text
