"""A request the upstream refuses as the caller's fault comes back in the upstream's
own words (message, param, code), with every secret scrubbed."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bastion import FailoverError, chat
from bastion.models.http_errors import scrub_secrets
from bastion.testing import Fault

KEY = "custom-upstream-credential-42"


def refusal(message: str, **fields: str) -> Fault:
    return Fault.status(
        400, body={"error": {"message": message, "type": "invalid_request_error", **fields}}
    )


async def test_an_upstream_400_is_returned_in_its_own_words(fleet, make_router) -> None:
    message = (
        "Invalid value for 'temperature': 7 is above the maximum of 2. "
        f"(request by sk-proj-abcdef0123456789, Authorization: Bearer tok_abc123456, {KEY})"
    )
    fleet["primary"].set_default(refusal(message, param="temperature", code="invalid_value"))
    router = make_router(endpoints={"primary": {"api_key": KEY}})
    with pytest.raises(FailoverError) as caught:
        await router.complete(chat("hi"))
    error = caught.value
    assert error.detail is not None
    assert error.detail.message.startswith(
        "Invalid value for 'temperature': 7 is above the maximum of 2."
    )
    assert (error.detail.param, error.detail.code) == ("temperature", "invalid_value")
    assert error.detail.message in str(error)
    for secret in ("sk-proj-abcdef0123456789", "tok_abc123456", KEY):
        assert secret not in str(error) and secret not in error.detail.message
    assert len(fleet["secondary"].attempts) == 0  # the caller's fault: never tried elsewhere


async def test_a_streamed_request_gets_the_same_words(fleet, make_router) -> None:
    fleet["primary"].set_default(refusal("'messages' must not be empty", param="messages"))
    with pytest.raises(FailoverError) as caught:
        await anext(make_router().stream(chat("hi")))
    assert caught.value.detail is not None
    assert caught.value.detail.message == "'messages' must not be empty"
    assert caught.value.detail.param == "messages"


async def test_failures_that_are_not_the_callers_carry_no_upstream_detail(
    fleet, make_router
) -> None:
    for name in ("primary", "secondary"):
        fleet[name].set_default(Fault.status(500))
    with pytest.raises(FailoverError) as caught:
        await make_router().complete(chat("hi"))
    assert caught.value.detail is None


@given(
    st.text(alphabet=st.characters(codec="ascii", exclude_categories=("Cc",)), max_size=40),
    st.from_regex(r"sk-[A-Za-z0-9_-]{8,40}", fullmatch=True),
    st.text(alphabet=st.characters(codec="ascii", exclude_categories=("Cc",)), max_size=40),
)
def test_no_api_key_survives_scrubbing_wherever_it_sits(before, key, after) -> None:
    assert key not in scrub_secrets(f"{before} {key} {after}")
