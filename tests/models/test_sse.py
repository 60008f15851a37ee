"""The SSE decoder: framing, split reads, leniency at the end, the size bound."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from bastion.models.sse import SseError, SseEvent, iter_sse


class Chunks:
    """Stands in for aiohttp's StreamReader: delivers the body in the given reads."""

    def __init__(self, *chunks: bytes) -> None:
        self._chunks = chunks

    async def _gen(self) -> AsyncIterator[bytes]:
        for chunk in self._chunks:
            yield chunk

    def iter_any(self) -> AsyncIterator[bytes]:
        return self._gen()


async def decode(*chunks: bytes, **options: int) -> list[SseEvent]:
    return [e async for e in iter_sse(Chunks(*chunks), **options)]  # type: ignore[arg-type]


async def test_one_event_per_blank_line() -> None:
    events = await decode(b'data: {"a":1}\n\ndata: [DONE]\n\n')
    assert events == [SseEvent("message", b'{"a":1}'), SseEvent("message", b"[DONE]")]


async def test_event_name_is_kept_and_reset_after_dispatch() -> None:
    events = await decode(b"event: error\ndata: x\n\ndata: y\n\n")
    assert events == [SseEvent("error", b"x"), SseEvent("message", b"y")]


async def test_crlf_line_endings() -> None:
    events = await decode(b"event: ping\r\ndata: 1\r\n\r\n")
    assert events == [SseEvent("ping", b"1")]


async def test_lines_split_across_reads_byte_by_byte() -> None:
    body = b'event: delta\r\ndata: {"text":"hello"}\r\n\r\ndata: two\n\n'
    events = await decode(*(body[i : i + 1] for i in range(len(body))))
    assert events == [SseEvent("delta", b'{"text":"hello"}'), SseEvent("message", b"two")]


async def test_multi_line_data_is_joined_with_newlines() -> None:
    assert await decode(b"data: a\ndata: b\n\n") == [SseEvent("message", b"a\nb")]


async def test_comments_and_unknown_fields_are_ignored() -> None:
    events = await decode(b": keep-alive\n\nid: 7\nretry: 100\ndata: x\n\n")
    assert events == [SseEvent("message", b"x")]


async def test_only_one_space_after_the_colon_is_dropped() -> None:
    assert await decode(b"data:x\n\ndata:  y\n\n") == [
        SseEvent("message", b"x"),
        SseEvent("message", b" y"),
    ]


async def test_complete_event_without_closing_blank_line_is_dispatched_at_eof() -> None:
    assert await decode(b"data: [DONE]\n") == [SseEvent("message", b"[DONE]")]


async def test_line_cut_at_eof_is_dropped() -> None:
    assert await decode(b'data: {"a":1}\n\ndata: {"choi') == [SseEvent("message", b'{"a":1}')]


async def test_event_over_the_bound_raises() -> None:
    with pytest.raises(SseError):
        await decode(b"data: " + b"x" * 100, b"y" * 100, max_event_bytes=150)


async def test_many_small_events_do_not_add_up_to_the_bound() -> None:
    events = await decode(b"data: 12345\n\n" * 50, max_event_bytes=20)
    assert len(events) == 50
