"""Messages as stored JSON: compact, lossless, and checked on the way in and out."""

from __future__ import annotations

import orjson
import pytest

from bastion.memory import CorruptRecord
from bastion.memory.codec import decode_message, encode_message
from bastion.types import Message, ToolCall


def test_a_plain_message_is_stored_without_its_defaults():
    assert orjson.loads(encode_message(Message("user", "hi"))) == {"role": "user", "content": "hi"}


@pytest.mark.parametrize(
    "message",
    [
        Message("user", ""),
        Message("assistant", None, (ToolCall("a", "f", "{}"), ToolCall("b", "g", '{"x":1}'))),
        Message("tool", "42", tool_call_id="a", name="f"),
        Message("system", "ünïcödé \u2028 \x00"),
        Message(
            "user",
            "what is this?",
            parts=(
                {"type": "text", "text": "what is this?"},
                {"type": "image_url", "image_url": {"url": "https://example.com/a.png"}},
            ),
        ),
    ],
)
def test_every_field_round_trips(message):
    assert decode_message(encode_message(message)) == message


def test_a_message_with_an_unknown_role_is_refused_before_any_write():
    with pytest.raises(CorruptRecord):
        encode_message(Message("hacker", "x"))  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "stored",
    [
        b"not json",
        b"[]",
        b'{"content": "no role"}',
        b'{"role": "wizard"}',
        b'{"role": "user", "content": 5}',
        b'{"role": "assistant", "tool_calls": [{"id": "a"}]}',
        b'{"role": "user", "content": "x", "parts": "an image"}',
        b'{"role": "user", "content": "x", "parts": [1]}',
    ],
)
def test_a_row_that_is_not_a_message_raises_corrupt_record(stored):
    with pytest.raises(CorruptRecord):
        decode_message(stored)
