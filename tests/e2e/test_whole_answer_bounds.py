"""A request for one whole answer never waits the whole `total` on a silent upstream.
With `upstream_stream: always` it is bounded like a stream: asked of the upstream as a
stream and read whole, a silent upstream is left after the first-token limit, a stall
after the idle limit, and a cut answer fails over to a whole answer from the next
target. By default (`auto`, today `never`) it is asked plainly and bounded by its
headers: `timeouts.headers`, else `WHOLE_ANSWER_HEADERS`."""

from __future__ import annotations

import pytest

from bastion import chat
from bastion.config import load_config
from bastion.models.base import WHOLE_ANSWER_HEADERS, Timeouts
from bastion.testing import DEFAULT_TEXT, Fault

# `total` far beyond the request's deadline: only the first-token (or idle) limit can
# free the request in time to fail over. No `headers` bound.
SLOW_TOTAL = {"connect": "300ms", "first_token": "300ms", "idle": "300ms", "total": "120s"}
QUESTION = chat("Tell me about the fox.")


def bounded(fleet, make_router, **primary):
    settings = {"timeouts": SLOW_TOTAL, "upstream_stream": "always", **primary}
    return make_router(endpoints={"primary": settings}, deadline="10s")


async def test_a_silent_upstream_is_left_after_the_first_token_limit(fleet, make_router):
    fleet["primary"].set_default(Fault.hang())
    answer = await bounded(fleet, make_router).complete(QUESTION)
    assert (answer.text, answer.endpoint) == (DEFAULT_TEXT, "secondary")
    first = answer.attempts[0]
    assert (first.endpoint, first.kind) == ("primary", "timeout")
    assert first.message == "no first token after 0.3s"


async def test_a_stall_mid_answer_fails_over_to_a_whole_answer(fleet, make_router):
    fleet["primary"].set_default(Fault.stall(after_chars=10, duration=30))
    answer = await bounded(fleet, make_router).complete(QUESTION)
    assert (answer.text, answer.endpoint) == (DEFAULT_TEXT, "secondary")
    assert answer.attempts[0].message == "no idle after 0.3s"


async def test_a_cut_answer_fails_over_to_a_whole_answer(fleet, make_router):
    fleet["primary"].set_default(Fault.cut(10))
    answer = await bounded(fleet, make_router).complete(QUESTION)
    assert (answer.text, answer.endpoint) == (DEFAULT_TEXT, "secondary")
    assert answer.attempts[0].kind == "connection"
    assert answer.raw is not None and answer.raw["model"] == "model-secondary"


async def test_by_default_it_is_asked_plainly_and_its_headers_bound_it(fleet, make_router):
    fleet["primary"].set_default(Fault.hang())
    router = make_router(
        endpoints={"primary": {"timeouts": {**SLOW_TOTAL, "headers": "300ms"}}}, deadline="10s"
    )
    answer = await router.complete(QUESTION)
    assert (answer.text, answer.endpoint) == (DEFAULT_TEXT, "secondary")
    assert answer.attempts[0].message == "no headers after 0.3s"
    assert not fleet["primary"].attempts[0].stream


def test_a_whole_answer_asked_plainly_waits_at_most_its_headers_bound():
    assert Timeouts().whole_answer() == (WHOLE_ANSWER_HEADERS, "headers")
    assert Timeouts().total > WHOLE_ANSWER_HEADERS
    assert Timeouts(headers=5).whole_answer() == (5, "headers")
    assert Timeouts(total=30).whole_answer() == (30, "total")


async def test_several_choices_are_asked_plainly_even_with_always(fleet, make_router):
    await bounded(fleet, make_router).complete(chat("hi", extra={"n": 2}))
    assert not fleet["primary"].attempts[0].stream


def test_a_bad_upstream_stream_is_a_config_error_naming_the_field():
    config = {
        "endpoints": [
            {"id": "a", "provider": "anthropic", "model": "m", "upstream_stream": "sometimes"}
        ],
        "models": {"chat": {"targets": ["a"]}},
    }
    with pytest.raises(ValueError, match=r"endpoints\[0\]\.upstream_stream"):
        load_config(config)
