"""What an OpenAI-compatible upstream says besides the text — `logprobs`,
`system_fingerprint`, its answer's id — reaches the caller of a stream, and a whole
answer read from a stream, as it was said; across a seam, each piece keeps its own."""

from __future__ import annotations

from bastion import StreamFinish, TextDelta, chat
from bastion.testing import DEFAULT_TEXT, Fault

ASK_LOGPROBS = {"logprobs": True, "top_logprobs": 1}


def tokens(logprobs) -> str:
    return "".join(entry["token"] for entry in logprobs["content"])


async def test_stream_events_carry_logprobs_and_the_fingerprint(fleet, make_router) -> None:
    events = [e async for e in make_router().stream(chat("hi", extra=ASK_LOGPROBS))]
    deltas = [e for e in events if isinstance(e, TextDelta)]
    assert "".join(d.text for d in deltas) == DEFAULT_TEXT
    assert all(d.logprobs is not None and tokens(d.logprobs) == d.text for d in deltas)
    assert {d.info.system_fingerprint for d in deltas} == {"fp_bastion_fleet"}
    finish = events[-1]
    assert isinstance(finish, StreamFinish) and finish.info is not None
    assert finish.info.usage is not None and finish.info.usage["total_tokens"] > 0


async def test_after_a_seam_pieces_name_the_answer_they_came_from(fleet, make_router) -> None:
    fleet["primary"].script(Fault.cut(12))
    events = [e async for e in make_router().stream(chat("hi", extra=ASK_LOGPROBS))]
    deltas = [e for e in events if isinstance(e, TextDelta)]
    assert "".join(d.text for d in deltas) == DEFAULT_TEXT
    models = [d.info.model for d in deltas]
    switch = models.index("model-secondary")
    assert set(models[:switch]) == {"model-primary"} and set(models[switch:]) == {"model-secondary"}
    # The upstream's logprobs only ever describe the piece they come with.
    assert all(d.logprobs is None or tokens(d.logprobs) == d.text for d in deltas)
    assert any(d.logprobs is not None for d in deltas[switch:])


async def test_a_whole_answer_read_from_a_stream_keeps_what_the_upstream_said(
    fleet, make_router
) -> None:
    router = make_router(endpoints={"primary": {"upstream_stream": "always"}})
    answer = await router.complete(chat("hi", extra=ASK_LOGPROBS))
    assert answer.text == DEFAULT_TEXT
    raw = answer.raw
    assert raw is not None
    assert raw["id"].startswith("chatcmpl-fake") and raw["system_fingerprint"] == "fp_bastion_fleet"
    assert raw["model"] == "model-primary" and isinstance(raw["created"], int)
    choice = raw["choices"][0]
    assert choice["message"]["content"] == DEFAULT_TEXT
    assert tokens(choice["logprobs"]) == DEFAULT_TEXT
    assert raw["usage"]["prompt_tokens_details"] == {"cached_tokens": 0}
    assert fleet["primary"].attempts[0].stream  # asked as a stream, read whole
