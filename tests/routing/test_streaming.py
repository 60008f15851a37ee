"""Stream failover with scripted models: before the first token, after it, and giving up."""

from __future__ import annotations

import random

import pytest

from bastion import (
    Endpoint,
    Fail,
    FailoverError,
    Hedge,
    ModelGroup,
    Reply,
    Router,
    RouterOptions,
    ScriptedModel,
    StreamError,
    StreamFinish,
    TextDelta,
    ToolCall,
    ToolCallDelta,
    chat,
)
from bastion.observability.events import HedgeStarted, HedgeWon, RequestFinished, StreamSeam
from bastion.resilience.clock import FakeClock
from bastion.routing.continuation import CONTINUE_INSTRUCTION

ANSWER = "The quick brown fox jumps over the lazy dog and runs far away into the woods."


def build(models, *, prefill=None, group=None, events=None, clock=None) -> Router:
    prefill = prefill or {}
    endpoints = [
        (
            Endpoint(
                id=name,
                provider="scripted",
                model=f"model-{name}",
                prefill=prefill.get(name, "auto"),
            ),
            m,
        )
        for name, m in models.items()
    ]
    return Router(
        endpoints,
        {"chat": group or ModelGroup.of(*models)},
        options=RouterOptions(health_checks=False),
        default_model="chat",
        clock=clock or FakeClock(),
        rng=random.Random(3),
        hooks=[events.append] if events is not None else (),
    )


async def read(stream) -> tuple[str, list]:
    events = [e async for e in stream]
    return "".join(e.text for e in events if isinstance(e, TextDelta)), events


async def test_failure_before_the_first_token_fails_over_invisibly():
    router = build(
        {
            "primary": ScriptedModel([Fail("unavailable", status=503)] * 2),
            "backup": ScriptedModel([ANSWER]),
        }
    )
    stream = router.stream(chat("x"))
    text, events = await read(stream)
    assert text == ANSWER
    assert events[-1] == StreamFinish("stop", events[-1].usage)
    assert stream.endpoint == "backup" and stream.model == "model-backup"
    assert [a.kind for a in stream.attempts] == ["unavailable", None]


async def test_cut_after_tokens_continues_by_prefill_with_no_repeated_text():
    seams: list = []
    backup = ScriptedModel([ANSWER])
    router = build(
        {
            "primary": ScriptedModel([Fail("connection", after_chars=23, partial=ANSWER)]),
            "backup": backup,
        },
        events=seams,
    )
    stream = router.stream(chat("x"))
    text, events = await read(stream)
    assert text == ANSWER
    assert events[-1].finish_reason == "stop"
    assert backup.requests[0].messages[-1].role == "assistant"
    assert backup.requests[0].messages[-1].content == ANSWER[:23]
    seam = next(e for e in seams if isinstance(e, StreamSeam))
    assert (seam.from_endpoint, seam.to_endpoint, seam.chars_sent, seam.mode) == (
        "primary",
        "backup",
        23,
        "prefill",
    )
    assert stream.endpoint == "backup" and stream.seams == 1


async def test_cut_after_tokens_continues_by_instruction_and_trims_the_repeat():
    def repeat_last_words(request) -> str:
        partial = request.messages[-2].content
        assert request.messages[-1].content == CONTINUE_INSTRUCTION
        words = partial.split(" ")
        restart = " ".join(words[-3:])
        return ANSWER[ANSWER.index(restart, len(partial) - len(restart) - 1) :]

    backup = ScriptedModel(default=repeat_last_words)
    router = build(
        {
            "primary": ScriptedModel([Fail("connection", after_chars=30, partial=ANSWER)]),
            "backup": backup,
        },
        prefill={"backup": "unsupported"},
    )
    text, _ = await read(router.stream(chat("x")))
    assert text == ANSWER


async def test_prefill_rejected_is_retried_on_the_same_endpoint_by_instruction():
    def answer(request) -> Reply | Fail:
        if request.messages[-1].role == "assistant":
            return Fail("prefill_rejected", status=400, message="prefill not supported")
        return Reply(ANSWER[len(request.messages[-2].content) :])

    backup = ScriptedModel(default=answer)
    router = build(
        {
            "primary": ScriptedModel([Fail("connection", after_chars=10, partial=ANSWER)]),
            "backup": backup,
        }
    )
    stream = router.stream(chat("x"))
    text, events = await read(stream)
    assert text == ANSWER and events[-1].finish_reason == "stop"
    assert [a.kind for a in stream.attempts] == ["connection", "prefill_rejected", None]


async def test_no_target_to_continue_ends_with_an_in_band_error_not_a_clean_stop():
    router = build(
        {
            "primary": ScriptedModel([Fail("connection", after_chars=12, partial=ANSWER)]),
            "backup": ScriptedModel([Fail("server_error", status=500)] * 3),
        }
    )
    text, events = await read(router.stream(chat("x")))
    assert text == ANSWER[:12]
    error, finish = events[-2], events[-1]
    assert isinstance(error, StreamError) and isinstance(finish, StreamFinish)
    assert finish.finish_reason == "error"
    # The failure that broke the stream is reported, not the continuation's.
    assert error.kind == "connection"
    assert [a.kind for a in error.attempts] == ["connection"] + ["server_error"] * 3


async def test_every_target_failing_before_any_token_raises_from_the_first_read():
    router = build({"primary": ScriptedModel([Fail("connection")])})
    with pytest.raises(FailoverError):
        await read(router.stream(chat("x")))


async def test_tool_calls_are_held_until_their_attempt_finishes():
    call = ToolCall("call_1", "lookup", '{"q": "fox"}')
    router = build(
        {
            "primary": ScriptedModel([Fail("connection")]),
            "backup": ScriptedModel([Reply(tool_calls=(call,))]),
        }
    )
    stream = router.stream(chat("x"))
    _, events = await read(stream)
    assert events == [ToolCallDelta(0, "call_1", "lookup", '{"q": "fox"}'), events[-1]]
    assert events[-1].finish_reason == "tool_calls"
    collected = (
        await build({"backup": ScriptedModel([Reply(tool_calls=(call,))])})
        .stream(chat("x"))
        .collect()
    )
    assert collected.message.tool_calls == (call,)


async def test_hedge_starts_a_second_attempt_when_the_first_token_is_late():
    events: list = []
    slow = ScriptedModel(default=Reply("slow answer", delay=5.0))
    fast = ScriptedModel(default=Reply("fast answer"))
    group = ModelGroup.of("slow", "fast", hedge=Hedge(initial=0.02, min_delay=0.01))
    router = build({"slow": slow, "fast": fast}, group=group, events=events)
    stream = router.stream(chat("x"))
    text, _ = await read(stream)
    assert text == "fast answer" and stream.endpoint == "fast"
    started = next(e for e in events if isinstance(e, HedgeStarted))
    won = next(e for e in events if isinstance(e, HedgeWon))
    assert (started.primary, started.hedge) == ("slow", "fast")
    assert (won.winner, won.loser) == ("fast", "slow")
    assert router.status()[0].in_flight == 0


async def test_hedged_complete_returns_the_first_answer_and_cancels_the_loser():
    slow = ScriptedModel(default=Reply("slow", delay=5.0))
    fast = ScriptedModel(default=Reply("fast"))
    group = ModelGroup.of("slow", "fast", hedge=Hedge(initial=0.02, min_delay=0.01))
    router = build({"slow": slow, "fast": fast}, group=group)
    answer = await router.complete(chat("x"))
    assert answer.text == "fast"
    assert all(s.in_flight == 0 for s in router.status())


async def test_a_stream_its_reader_leaves_ends_on_record_as_cancelled():
    events: list = []
    router = build(
        {"primary": ScriptedModel([Reply("a long answer " * 4, chunk=4)])}, events=events
    )
    stream = router.stream(chat("x"))
    first = await stream.__anext__()
    assert isinstance(first, TextDelta)
    await stream.aclose()
    finished = [e for e in events if isinstance(e, RequestFinished)]
    assert [(e.ok, e.kind) for e in finished] == [(False, "cancelled")]
