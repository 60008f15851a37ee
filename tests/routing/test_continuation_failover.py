"""Stream rescue through the router, with scripted models: whatever the continuing
model does, the caller reads each word once — or the stream fails, never glued."""

from __future__ import annotations

import random

from bastion import (
    Endpoint,
    Fail,
    ModelGroup,
    Reply,
    Router,
    RouterOptions,
    ScriptedModel,
    StreamError,
    TextDelta,
    chat,
)
from bastion.observability.events import StreamSeam
from bastion.resilience.clock import FakeClock

ANSWER = (
    "The quick brown fox jumps over the lazy dog and runs far away into the woods. "
    "It was never seen again by anyone in the village, though some claimed otherwise."
)
CUT = 40


def build(models: dict[str, ScriptedModel], prefill: dict[str, str], events: list) -> Router:
    endpoints = [
        (
            Endpoint(id=name, provider="scripted", model=name, prefill=prefill.get(name, "auto")),
            model,
        )
        for name, model in models.items()
    ]
    return Router(
        endpoints,
        {"chat": ModelGroup.of(*models)},
        options=RouterOptions(health_checks=False),
        default_model="chat",
        clock=FakeClock(),
        rng=random.Random(5),
        hooks=[events.append],
    )


def broken() -> ScriptedModel:
    return ScriptedModel([Fail("connection", after_chars=CUT, partial=ANSWER)])


async def read(router: Router) -> tuple[str, list]:
    stream = router.stream(chat("Tell me about the fox."))
    events = [e async for e in stream]
    return "".join(e.text for e in events if isinstance(e, TextDelta)), events


async def test_a_model_asked_to_continue_that_starts_over_is_read_past_what_was_sent():
    events: list = []
    # Asked by instruction, a scripted model answers its whole text again.
    router = build(
        {"primary": broken(), "backup": ScriptedModel(default=ANSWER)},
        {"backup": "unsupported"},
        events,
    )
    text, stream_events = await read(router)
    assert text == ANSWER and stream_events[-1].finish_reason == "stop"
    seam = next(e for e in events if isinstance(e, StreamSeam))
    assert (seam.mode, seam.trimmed) == ("instruct", CUT)


async def test_a_model_that_ignores_the_prefill_and_restarts_reworded_is_aligned_too():
    events: list = []
    reworded = (
        "the quick brown fox jumped over the lazy dog"
        + ANSWER[len("The quick brown fox jumps over the lazy dog") :]
    )
    router = build({"primary": broken(), "backup": ScriptedModel(default=reworded)}, {}, events)
    text, stream_events = await read(router)
    assert text == ANSWER and stream_events[-1].finish_reason == "stop"
    assert next(e for e in events if isinstance(e, StreamSeam)).mode == "prefill"


async def test_a_continuation_that_does_not_fit_fails_over_to_a_target_that_continues():
    events: list = []
    other = "Sure! Foxes are small omnivorous mammals found on every continent but one."
    router = build(
        {
            "primary": broken(),
            "stranger": ScriptedModel(default=other),
            "backup": ScriptedModel(default=ANSWER),
        },
        {},
        events,
    )
    text, stream_events = await read(router)
    assert text == ANSWER and stream_events[-1].finish_reason == "stop"
    seams = [e for e in events if isinstance(e, StreamSeam)]
    assert [s.to_endpoint for s in seams] == ["backup"]


async def test_a_continuation_that_does_not_fit_anywhere_ends_the_stream_with_an_error():
    events: list = []
    other = "Sure! Foxes are small omnivorous mammals found on every continent but one."
    router = build({"primary": broken(), "stranger": ScriptedModel(default=other)}, {}, events)
    text, stream_events = await read(router)
    assert text == ANSWER[:CUT]
    error, finish = stream_events[-2], stream_events[-1]
    assert isinstance(error, StreamError) and finish.finish_reason == "error"
    assert "protocol" in [a.kind for a in error.attempts]


async def test_a_restart_that_stops_before_the_cut_is_not_taken_for_the_end_of_the_answer():
    events: list = []
    # Asked to go on, the fallback says the opening again and stops: the answer is not
    # complete, so the stream must not end with a clean stop.
    short = ScriptedModel(default=ANSWER[: CUT - 12])
    router = build({"primary": broken(), "backup": short}, {"backup": "unsupported"}, events)
    text, stream_events = await read(router)
    assert text == ANSWER[:CUT]
    assert stream_events[-1].finish_reason == "error"


async def test_an_endpoint_said_to_support_prefill_that_rejects_one_is_asked_by_instruction():
    events: list = []

    def strict(request) -> Reply | Fail:
        if request.messages[-1].role == "assistant":
            return Fail("prefill_rejected", status=400, message="prefill not supported")
        return Reply(ANSWER)  # asked to go on, it starts over

    backup = ScriptedModel(default=strict)
    router = build({"primary": broken(), "backup": backup}, {"backup": "supported"}, events)
    text, stream_events = await read(router)
    assert text == ANSWER and stream_events[-1].finish_reason == "stop"
    assert [r.messages[-1].role for r in backup.requests] == ["assistant", "user"]
