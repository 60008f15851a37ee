"""`FakeUpstream`: one scriptable OpenAI- and Anthropic-compatible server on loopback."""

from __future__ import annotations

import asyncio
import itertools
import time
from collections import deque
from types import TracebackType
from typing import Self

import orjson
from aiohttp import web

from bastion.testing.anthropic_wire import AnthropicWire
from bastion.testing.control import control_routes
from bastion.testing.exchange import Exchange, ServerClosing
from bastion.testing.faults import Fault, Hang, Reset, Status
from bastion.testing.log import AttemptLog
from bastion.testing.openai_wire import OpenAIWire
from bastion.testing.plan import (
    Incoming,
    InstructMode,
    PrefillMode,
    Schedule,
    Settings,
    decide,
    effective,
    retry_after_headers,
)
from bastion.testing.wire import BadRequest, Wire

DEFAULT_TEXT = "The quick brown fox jumps over the lazy dog."
"""Every upstream's answer unless told otherwise. One text for all, so an answer
continued on another upstream reads as one answer."""

_OPENAI, _ANTHROPIC = OpenAIWire(), AnthropicWire()
MAX_REQUEST_BYTES = 32 * 1024 * 1024  # big enough for context-length tests, still bounded
MAX_ATTEMPTS = 10_000  # a demo fleet may run for hours; the oldest records go first
SHUTDOWN_TIMEOUT = 1.0  # seconds a handler gets to notice the close; they need milliseconds


class FakeUpstream:
    """A fake model provider on a real loopback socket.

    Serves `POST /v1/chat/completions` (OpenAI), `POST /v1/messages` (Anthropic),
    `GET /v1/models` (health probes) and the `/_fleet/*` control routes. Each request
    takes the next queued fault (`script`) or else the standing one (`set_default`).

    Every answer is a slice of one full `text` (see `plan.answer_text` for the
    continuation rules). How a cut answer is continued, like real providers do it:
    `prefill` is what a final assistant message gets (`PrefillMode`: continued,
    ignored with the answer started over, or refused); `instruct` is how a "please
    continue" request is answered (`InstructMode`: cleanly, repeating the last
    `overlap_words` words or the last sentence, starting over, or starting over with
    small changes). `set_continuation` changes them while running; `heal` restores
    them. Bad values raise `FaultError` (a ValueError) naming the field.
    """

    def __init__(
        self,
        name: str,
        *,
        text: str = DEFAULT_TEXT,
        host: str = "127.0.0.1",
        port: int = 0,
        overlap_words: int = 3,
        prefill: PrefillMode = "continue",
        chunk_chars: int = 8,
        chunk_delay: float = 0.0,
        instruct: InstructMode = "overlap",
    ) -> None:
        self.name = name
        self.host = host
        self.settings = Settings(text, overlap_words, prefill, chunk_chars, chunk_delay, instruct)
        self._initial = self.settings
        self._requested_port = port
        self._port: int | None = None
        self._runner: web.AppRunner | None = None
        self._closing = asyncio.Event()  # replaced at each start: events bind to one loop
        self._schedule = Schedule(time.monotonic())
        self._attempts: deque[AttemptLog] = deque(maxlen=MAX_ATTEMPTS)
        self._probes = 0
        self._seq = itertools.count(1)

    # --- lifecycle --------------------------------------------------------------------

    async def start(self) -> None:
        """Bind and serve. `port` 0 picks a free port; read it back from `base_url`."""
        if self._runner is not None:
            raise RuntimeError(f"upstream {self.name!r} is already running")
        app = web.Application(client_max_size=MAX_REQUEST_BYTES)
        app.add_routes(
            [
                web.post("/v1/chat/completions", self._openai),
                web.post("/v1/messages", self._anthropic),
                web.get("/v1/models", self._models),
                *control_routes(self),
            ]
        )
        # handler_cancellation: a client that hangs up cancels its handler, so a hung
        # request ends with its client instead of living until shutdown.
        runner = web.AppRunner(
            app, access_log=None, handler_cancellation=True, shutdown_timeout=SHUTDOWN_TIMEOUT
        )
        await runner.setup()
        site = web.TCPSite(runner, self.host, self._requested_port)
        try:
            await site.start()
        except BaseException:
            await runner.cleanup()
            raise
        self._closing = asyncio.Event()
        self._runner = runner
        self._port = runner.addresses[0][1]

    async def close(self) -> None:
        """Stop serving. Streams, stalls and hangs in progress end at once (their
        connections are dropped); safe to call twice."""
        runner, self._runner = self._runner, None
        if runner is None:
            return
        self._closing.set()
        await runner.cleanup()

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    # --- addresses --------------------------------------------------------------------

    @property
    def running(self) -> bool:
        """Whether the upstream is serving (between `start()` and `close()`)."""
        return self._runner is not None

    @property
    def port(self) -> int:
        """The bound port; still readable after `close()`, for messages."""
        if self._port is None:
            raise RuntimeError(f"upstream {self.name!r} is not running")
        return self._port

    @property
    def url(self) -> str:
        """The server root, where the `/_fleet/*` control routes live."""
        return f"http://{self.host}:{self.port}"

    @property
    def base_url(self) -> str:
        """What a client takes as its API base: `http://127.0.0.1:PORT/v1`."""
        return f"{self.url}/v1"

    # --- scripting --------------------------------------------------------------------

    def set_default(self, fault: Fault, *, model: str | None = None) -> None:
        """What every request gets when nothing is queued; for one model, or for all."""
        self._schedule.set_default(fault, model, time.monotonic())

    def script(self, *faults: Fault, model: str | None = None) -> None:
        """Queue faults, one per request, for requests naming `model` (or any model).
        A model's own queue is served before the any-model queue."""
        self._schedule.push(faults, model, time.monotonic())

    def clear_script(self) -> None:
        """Drop every queued fault."""
        self._schedule.clear_queued()

    def heal(self) -> None:
        """Back to healthy: no queued faults, every default `ok`, the continuation
        behaviour it was made with. Attempts are kept."""
        self._schedule.heal(time.monotonic())
        self.settings = self._initial

    def set_continuation(
        self,
        *,
        prefill: PrefillMode | None = None,
        instruct: InstructMode | None = None,
        overlap_words: int | None = None,
    ) -> None:
        """Change how a cut answer is continued (see the class docstring); what is not
        given stays as it is."""
        given = {"prefill": prefill, "instruct": instruct, "overlap_words": overlap_words}
        self.settings = self.settings.with_continuation(
            {key: value for key, value in given.items() if value is not None}
        )

    @property
    def queued(self) -> dict[str | None, int]:
        """How many faults wait in each queue (None: the any-model queue)."""
        return self._schedule.queued()

    # --- what happened ----------------------------------------------------------------

    @property
    def attempts(self) -> list[AttemptLog]:
        """Chat requests so far (the last `MAX_ATTEMPTS`), in the order they finished."""
        return list(self._attempts)

    @property
    def probes(self) -> int:
        """How many `GET /v1/models` requests were served (they are not attempts)."""
        return self._probes

    def clear_attempts(self) -> None:
        """Forget the attempts and the probe count."""
        self._attempts.clear()
        self._probes = 0

    # --- handlers ---------------------------------------------------------------------

    async def _openai(self, request: web.Request) -> web.StreamResponse:
        return await self._chat(request, _OPENAI)

    async def _anthropic(self, request: web.Request) -> web.StreamResponse:
        return await self._chat(request, _ANTHROPIC)

    async def _chat(self, request: web.Request, wire: Wire) -> web.StreamResponse:
        exchange = Exchange(request, wire, next(self._seq), self._closing)
        incoming: Incoming | None = None
        outcome = "bad_request"
        try:
            try:
                incoming = wire.read(orjson.loads(await request.read()))
            except web.HTTPRequestEntityTooLarge:
                return await exchange.reply(413, wire.error_body(413, "status"))
            except orjson.JSONDecodeError:
                body = wire.error_body(400, "bad_request", "the request body is not valid JSON")
                return await exchange.reply(400, body)
            except BadRequest as exc:
                return await exchange.reply(400, wire.error_body(400, "bad_request", exc.message))
            fault, set_at = self._schedule.take(incoming.model)
            outcome, plan = decide(
                fault,
                set_at,
                incoming,
                self.settings,
                now=time.monotonic(),
                wall_now=time.time(),
            )
            return await exchange.play(incoming, plan)
        except ServerClosing:
            return exchange.drop()
        except ConnectionError:
            outcome = "client_disconnected"
            return web.Response()
        except asyncio.CancelledError:
            if not self._closing.is_set():
                outcome = "client_disconnected"
            raise
        finally:
            self._attempts.append(self._log(exchange, incoming, outcome))

    def _log(self, exchange: Exchange, incoming: Incoming | None, outcome: str) -> AttemptLog:
        body = incoming.body if incoming is not None else {}
        messages = body.get("messages")
        return AttemptLog(
            upstream=self.name,
            api=exchange.wire.api,
            model=incoming.model if incoming is not None else "",
            stream=incoming.stream if incoming is not None else False,
            prefill=incoming is not None and incoming.prefill is not None,
            messages=tuple(messages) if isinstance(messages, list) else (),
            started_at=exchange.started_at,
            headers_at=exchange.headers_at,
            first_token_at=exchange.first_token_at,
            ended_at=time.monotonic(),
            status=exchange.status,
            outcome=outcome,
            text="".join(exchange.sent),
            body=body,
        )

    async def _models(self, request: web.Request) -> web.StreamResponse:
        """Health probes see the standing fault's up/down state, never queued faults."""
        self._probes += 1
        fault = effective(*self._schedule.standing(), time.monotonic())
        exchange = Exchange(request, _OPENAI, 0, self._closing)
        try:
            if isinstance(fault, Reset):
                return exchange.drop(reset=True)
            if isinstance(fault, Hang):
                await self._closing.wait()
                return exchange.drop()
            if isinstance(fault, Status):
                body = _OPENAI.error_body(fault.code, "status")
                headers = retry_after_headers(fault, time.time())
                return await exchange.reply(fault.code, body, headers)
        except ConnectionError:
            return web.Response()
        names = [self.name, *(m for m in self._schedule.models() if m != self.name)]
        data = [
            {"id": m, "object": "model", "created": 0, "owned_by": "bastion-fleet"} for m in names
        ]
        return web.json_response({"object": "list", "data": data}, dumps=_dumps)


def _dumps(data: object) -> str:
    return orjson.dumps(data).decode()
