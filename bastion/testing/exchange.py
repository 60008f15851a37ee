"""Carrying out a plan on one HTTP request, and noting when each thing happened.

Every wait here ends early when the server starts closing (`_ServerClosing`), so a
fake upstream shuts down in milliseconds whatever its clients are waiting for.
"""

from __future__ import annotations

import asyncio
import socket
import struct
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Literal

from aiohttp import web

from bastion.testing.faults import Cut, InbandError, Malformed, Stall
from bastion.testing.plan import Answer, Drop, ErrorReply, Hold, Incoming, Plan
from bastion.testing.wire import Encoder, Wire


class ServerClosing(Exception):
    """The upstream is shutting down; the request is abandoned mid-way."""


@dataclass(frozen=True, slots=True)
class Step:
    """One thing to send in a stream. `value` is text, arguments or a tool name."""

    kind: Literal["text", "tool", "args", "glitch"]
    index: int = 0
    value: str = ""


def steps(answer: Answer) -> Iterator[Step]:
    """The stream's content in order, pieces of at most `chunk_chars`, with the glitch
    (if any) placed exactly after `after_chars` chars of content."""
    glitch_at = min(answer.glitch.after_chars, answer.content_chars) if answer.glitch else None
    sent = 0

    def pieces(kind: Literal["text", "args"], index: int, text: str) -> Iterator[Step]:
        nonlocal sent
        while text:
            size = answer.chunk_chars
            if glitch_at is not None and sent < glitch_at:
                size = min(size, glitch_at - sent)
            if sent == glitch_at:
                yield Step("glitch")
            piece, text = text[:size], text[size:]
            sent += len(piece)
            yield Step(kind, index, piece)

    yield from pieces("text", 0, answer.text)
    for i, (name, args) in enumerate(answer.tool_calls):
        yield Step("tool", i, name)
        yield from pieces("args", i, args)
    if sent == glitch_at:
        yield Step("glitch")


class Exchange:
    """One request/response: plays a `Plan` through a `Wire`, records the timings."""

    def __init__(self, request: web.Request, wire: Wire, seq: int, closing: asyncio.Event) -> None:
        self.request = request
        self.wire = wire
        self.seq = seq
        self.closing = closing
        self.started_at = time.monotonic()
        self.headers_at: float | None = None
        self.first_token_at: float | None = None
        self.status: int | None = None
        self.sent: list[str] = []
        self.disconnected = False

    # --- primitives ---------------------------------------------------------------------

    async def pause(self, seconds: float) -> None:
        """Sleep `seconds`, unless the server closes first."""
        if self.closing.is_set():
            raise ServerClosing
        if seconds <= 0:
            return
        try:
            async with asyncio.timeout(seconds):
                await self.closing.wait()
        except TimeoutError:
            return
        raise ServerClosing

    def drop(self, *, reset: bool = False) -> web.StreamResponse:
        """Close the connection mid-exchange: with `reset`, abruptly (RST, and whatever
        is unsent is lost); otherwise after flushing what was written (FIN), so the
        client surely reads the partial answer before the connection ends.

        Returning the response afterwards is quiet: aiohttp takes the failed final
        write for a client that went away."""
        transport = self.request.transport
        if transport is not None:
            if reset:
                sock = transport.get_extra_info("socket")
                if sock is not None:
                    # Linger 0 makes the close send RST instead of FIN.
                    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                transport.abort()
            else:
                transport.close()
        return web.Response()

    async def reply(
        self, status: int, body: bytes, headers: tuple[tuple[str, str], ...] = ()
    ) -> web.StreamResponse:
        response = web.Response(
            status=status, body=body, content_type="application/json", headers=dict(headers)
        )
        await self._send_headers(response)
        await response.write_eof()
        return response

    async def _send_headers(self, response: web.StreamResponse) -> None:
        self.status = response.status
        await response.prepare(self.request)
        self.headers_at = time.monotonic()

    async def _write(self, response: web.StreamResponse, data: bytes, token: bool) -> None:
        if data:
            await response.write(data)
        if token and self.first_token_at is None:
            self.first_token_at = time.monotonic()

    # --- plans --------------------------------------------------------------------------

    async def play(self, request: Incoming, plan: Plan) -> web.StreamResponse:
        if isinstance(plan, ErrorReply):
            if plan.body is not None:
                body = plan.body.encode()
            else:
                body = self.wire.error_body(plan.status, plan.error)
            return await self.reply(plan.status, body, plan.headers)
        if isinstance(plan, Drop):
            return self.drop(reset=True)
        if isinstance(plan, Hold):
            # Bounded by the server's life; a client that leaves cancels the handler.
            await self.closing.wait()
            raise ServerClosing
        await self.pause(plan.latency)
        if request.stream:
            return await self._stream(request, plan)
        return await self._complete(request, plan)

    async def _complete(self, request: Incoming, answer: Answer) -> web.StreamResponse:
        glitch = answer.glitch
        await self.pause(answer.first_token_delay)
        if isinstance(glitch, Stall):
            await self.pause(glitch.duration)
        if isinstance(glitch, InbandError):
            return await self.reply(200, self.wire.inband_error_body(glitch.message))
        body = self.wire.completion(request, answer, self.seq, answer.ending != "no_finish")
        if isinstance(glitch, Malformed):
            return await self.reply(200, body[: len(body) // 2])
        if isinstance(glitch, Cut):
            response = web.StreamResponse(status=200, headers={"Content-Type": "application/json"})
            response.content_length = len(body)
            await self._send_headers(response)
            await self._write(response, body[: len(body) // 2], token=True)
            self.drop()
            return response
        response = await self.reply(200, body)
        self.first_token_at = self.headers_at
        self.sent.append(answer.text)
        return response

    async def _stream(self, request: Incoming, answer: Answer) -> web.StreamResponse:
        response = web.StreamResponse(
            status=200, headers={"Content-Type": "text/event-stream", "Cache-Control": "no-cache"}
        )
        await self._send_headers(response)
        encoder = self.wire.encoder(request, self.seq)
        await self._write(response, encoder.start(), token=False)
        await self.pause(answer.first_token_delay)
        paced = False
        for step in steps(answer):
            if step.kind == "glitch":
                if await self._glitch(response, encoder, answer):
                    return response
                continue
            if step.kind != "tool":
                if paced:
                    await self.pause(answer.chunk_delay)
                paced = True
            await self._write(response, self._render(encoder, step), token=True)
            if step.kind == "text":
                self.sent.append(step.value)
        if answer.ending != "no_finish":
            await self._write(response, encoder.finish(answer), token=False)
        if answer.ending != "missing_done":
            await self._write(response, encoder.done(), token=False)
        await response.write_eof()
        return response

    async def _glitch(self, response: web.StreamResponse, encoder: Encoder, answer: Answer) -> bool:
        """Carry out the mid-stream fault; True when it ends the stream."""
        glitch = answer.glitch
        if isinstance(glitch, Cut):
            self.drop()
            return True
        if isinstance(glitch, Stall):
            await self.pause(glitch.duration)
        elif isinstance(glitch, Malformed):
            await self._write(response, encoder.malformed(), token=False)
        elif isinstance(glitch, InbandError):
            await self._write(response, encoder.error(glitch.message), token=False)
            await response.write_eof()
            return True
        return False

    @staticmethod
    def _render(encoder: Encoder, step: Step) -> bytes:
        if step.kind == "text":
            return encoder.text(step.value)
        if step.kind == "tool":
            return encoder.tool_start(step.index, step.value)
        return encoder.tool_args(step.index, step.value)
