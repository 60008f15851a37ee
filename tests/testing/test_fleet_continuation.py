"""Continuation over the wire: the behaviour the router's stream failover relies on."""

from __future__ import annotations

import pytest

from bastion.testing import DEFAULT_TEXT, FakeUpstream, Fault, FaultError, Fleet


def prefill(text: str) -> tuple[dict[str, str], dict[str, str]]:
    return {"role": "user", "content": "Tell me."}, {"role": "assistant", "content": text}


async def test_a_prefilled_stream_sends_only_the_rest(up, chat) -> None:
    reply = await chat(up, *prefill("The quick brown fox"), stream=True)
    assert reply.text == " jumps over the lazy dog."
    assert up.attempts[0].prefill


async def test_a_please_continue_request_repeats_a_few_words(up, chat) -> None:
    reply = await chat(
        up,
        *prefill("The quick brown fox ju"),
        {"role": "user", "content": "Continue exactly where you stopped."},
        stream=True,
    )
    assert reply.text == "brown fox jumps over the lazy dog."
    assert not up.attempts[0].prefill


async def test_an_upstream_that_rejects_prefill_answers_400(chat) -> None:
    async with FakeUpstream("strict", prefill="reject") as up:
        reply = await chat(up, *prefill("The quick"))
        plain = await chat(up)
    assert reply.status == 400
    assert plain.status == 200
    assert up.attempts[0].outcome == "reject_prefill"


async def test_an_answer_cut_on_one_upstream_completes_on_another(chat) -> None:
    async with Fleet(["primary", "secondary"]) as fleet:
        fleet["primary"].script(Fault.cut(15))
        first = await chat(fleet["primary"], stream=True)
        second = await chat(fleet["secondary"], *prefill(first.text), stream=True)
    assert first.text + second.text == DEFAULT_TEXT
    assert [a.upstream for a in fleet.attempts] == ["primary", "secondary"]


async def test_the_attempt_log_keeps_the_messages_received(up, chat) -> None:
    messages = prefill("The quick")
    await chat(up, *messages)
    assert up.attempts[0].messages == messages
    assert up.attempts[0].body["model"] == "gpt-test"


def please_continue(text: str) -> tuple[dict[str, str], ...]:
    return (*prefill(text), {"role": "user", "content": "Continue where you stopped."})


async def test_an_upstream_that_ignores_prefill_starts_its_answer_over(chat) -> None:
    async with FakeUpstream("openai-like", prefill="ignore") as up:
        reply = await chat(up, *prefill("The quick brown fox"), stream=True)
    assert reply.text == DEFAULT_TEXT


@pytest.mark.parametrize(
    ("instruct", "text"),
    [
        ("continue", "mps over the lazy dog."),
        ("overlap", "brown fox jumps over the lazy dog."),
        ("restart", DEFAULT_TEXT),
        ("reword", "the  quick brown fox jumps over the lazy dog."),
    ],
)
async def test_a_please_continue_request_is_answered_as_the_upstream_is_set(
    chat, instruct, text
) -> None:
    async with FakeUpstream("up", instruct=instruct) as up:
        reply = await chat(up, *please_continue("The quick brown fox ju"), stream=True)
    assert reply.text == text


async def test_the_continuation_behaviour_changes_while_running_and_heal_restores_it(
    up, chat
) -> None:
    up.set_continuation(instruct="restart", prefill="ignore")
    assert (await chat(up, *please_continue("The quick"), stream=True)).text == DEFAULT_TEXT
    assert (await chat(up, *prefill("The quick"), stream=True)).text == DEFAULT_TEXT
    up.heal()
    healed = await chat(up, *prefill("The quick"), stream=True)
    assert healed.text == " brown fox jumps over the lazy dog."


async def test_a_bad_continuation_behaviour_is_refused_naming_the_field() -> None:
    with pytest.raises(FaultError) as caught:
        FakeUpstream("up", instruct="paraphrase")  # type: ignore[arg-type]
    assert caught.value.field == "instruct"


async def test_the_continuation_behaviour_is_set_over_http(up, http, chat) -> None:
    async with http.put(up.url + "/_fleet/continuation", json={"instruct": "sentence"}) as put:
        assert put.status == 200
        now = {"prefill": "continue", "instruct": "sentence", "overlap_words": 3}
        assert await put.json() == now
    async with http.get(up.url + "/_fleet/continuation") as got:
        assert (await got.json())["instruct"] == "sentence"
    reply = await chat(up, *please_continue("The quick brown fox ju"), stream=True)
    assert reply.text == DEFAULT_TEXT


async def test_a_bad_continuation_behaviour_over_http_is_a_400_naming_the_field(up, http) -> None:
    async with http.put(up.url + "/_fleet/continuation", json={"overlap_words": "two"}) as put:
        assert put.status == 400
        assert (await put.json())["error"]["field"] == "overlap_words"
    async with http.put(up.url + "/_fleet/continuation", json={"mode": "restart"}) as put:
        assert (put.status, (await put.json())["error"]["field"]) == (400, "mode")
    assert up.settings.continuation()["instruct"] == "overlap"
