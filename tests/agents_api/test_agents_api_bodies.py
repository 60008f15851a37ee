"""The run body's contract: the handlers' validation and the served document agree on
every body, and a refusal names the field in OpenAI's error shape."""

from __future__ import annotations

from typing import Any

import jsonschema_rs
import pytest
from hypothesis import given
from hypothesis import strategies as st

from bastion.server.agents.codec import parse_run
from bastion.server.errors import ApiError
from bastion.server.openapi import build_document

ABSENT = object()
USER = {"role": "user", "content": "Hi"}
# Each field's values, good and bad. Strings are printable: that ids must be printable
# is the one rule the document cannot state (it says minLength/maxLength).
GOOD: dict[str, list[Any]] = {
    "prompt": [None, "Hi"],
    "messages": [None, [USER], [USER, {"role": "tool", "content": "4", "tool_call_id": "c"}]],
    "context": [None, {}, {"tier": "gold"}],
    "run_id": [None, "r-1"],
    "thread_id": [None, "t1", "x" * 256],
    "resource_id": [None, "u1"],
}
BAD: dict[str, list[Any]] = {
    "prompt": ["", 5, ["Hi"]],
    "messages": [[], "Hi", [{"role": "robot", "content": "Hi"}], [{"role": "user"}]],
    "context": ["gold", [1]],
    "run_id": ["a:b", "", "x" * 129, 7],
    "thread_id": ["", "x" * 257, 7],
    "resource_id": ["", False],
    "thread": ["t1"],  # a typo: unknown fields are refused
}


def _document_validator() -> Any:
    document = build_document()
    return jsonschema_rs.Draft202012Validator(
        {"$ref": "#/components/schemas/RunRequest", "components": document["components"]}
    )


VALIDATOR = _document_validator()


@st.composite
def run_bodies(draw: st.DrawFn) -> dict[str, Any]:
    """Good values for some fields (or none: both prompt and messages, or neither, are
    bad too), and bad values for at most two."""
    body = {}
    for field, values in GOOD.items():
        value = draw(st.sampled_from([ABSENT, *values]))
        if value is not ABSENT:
            body[field] = value
    for field in draw(st.lists(st.sampled_from(list(BAD)), max_size=2, unique=True)):
        body[field] = draw(st.sampled_from(BAD[field]))
    return body


def _accepted(body: dict[str, Any]) -> bool:
    try:
        parse_run(body)
    except ApiError as error:
        assert error.status == 400
        assert error.code == "invalid_value"
        assert error.param is not None
        return False
    return True


@given(run_bodies())
def test_the_document_accepts_exactly_the_run_bodies_the_handlers_accept(
    body: dict[str, Any],
) -> None:
    assert _accepted(body) == VALIDATOR.is_valid(body), body


@pytest.mark.parametrize(
    ("body", "param", "says"),
    [
        ({"prompt": "Hi", "thread": "t1"}, "thread", "unknown field; a run body has context"),
        ({"prompt": 5}, "prompt", "must be a non-empty string"),
        ({"messages": "Hi"}, "messages", "is required (a non-empty array), or give a prompt"),
        ({"messages": [{"role": "user", "content": 1}]}, "messages[0].content", "must be"),
        ({"prompt": "Hi", "run_id": "a:b"}, "run_id", "must be 1 to 128 characters"),
        (
            {"prompt": "Hi", "thread_id": "t\n1"},
            "thread_id",
            "must be a string of 1 to 256 printable",
        ),
        ({"prompt": "Hi", "context": [1]}, "context", "must be an object"),
    ],
)
def test_a_refusal_names_the_field_and_says_what_it_must_be(
    body: dict[str, Any], param: str, says: str
) -> None:
    with pytest.raises(ApiError) as refused:
        parse_run(body)
    error = refused.value.body()["error"]
    assert error["param"] == param
    assert error["message"].startswith(f"{param}: {says}")
    assert (error["type"], error["code"]) == ("invalid_request_error", "invalid_value")


def test_a_socket_message_may_carry_its_type_and_nothing_else_unknown() -> None:
    assert parse_run({"type": "generate", "prompt": "Hi"}, also=("type",)).messages
    with pytest.raises(ApiError) as refused:
        parse_run({"type": "generate", "prompt": "Hi", "kind": "x"}, also=("type",))
    assert refused.value.param == "kind"
