"""Continuation over the wire: the behaviour the router's stream failover relies on."""

from __future__ import annotations

from bastion.testing import DEFAULT_TEXT, FakeUpstream, Fault, Fleet


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
