"""`WS /api/v1/agents/{name}/ws`: one socket, many turns.

The client sends JSON text messages:

    {"type": "generate", "prompt": "...", "thread_id": "t1", ...}  a turn (a run body)
    {"type": "cancel"}                                            stop the running turn
    {"type": "ping"}                                              answered {"type": "pong"}

and gets, per turn, the run's events as `{"type": "text_delta", "run_id": ..., ...}`
(the same types and fields as the SSE stream), ending with one `finish` (the result) or
one `error`. One turn runs at a time. A message that cannot be used — not JSON, an
unknown type, a bad run body, a turn while one is running — is answered with
`{"type": "error", "message": ..., "field": ..., "code": ...}` and the socket stays
open. Messages are bounded by `server.max_body` (a bigger one closes the socket with
1009, as the protocol has it); protocol pings are answered, and a peer that stops
answering the server's own pings is dropped.

The request's `x-bastion-context-*` headers are the context of every turn; a turn's
`context` wins over them. The socket is bound at the upgrade to the key's resources,
or to the user of its `x-bastion-user` token (a bad token is a 401 before the upgrade);
each turn is judged against that binding, and once the token has expired a turn is
refused with a 401 `error` (open a new socket with a fresh token). Closing the socket
cancels the running turn. On shutdown an idle socket is closed at once (1001) and a
busy one after its turn.
"""

from __future__ import annotations

import asyncio
from contextlib import aclosing
from typing import Any

import orjson
from aiohttp import WSCloseCode, WSMsgType, web

from bastion.agents import Error, Finished
from bastion.server.agents.api import find_agent, prepare_turn, record_usage, run_error
from bastion.server.agents.codec import event_body, header_context, parse_run
from bastion.server.common import dumps
from bastion.server.errors import ApiError, invalid
from bastion.server.keys import GATEWAY

HEARTBEAT = 30.0  # seconds between the server's pings; no pong in half that drops the peer


class _Session:
    """One socket: reads messages, runs one turn at a time, writes events."""

    def __init__(self, request: web.Request, ws: web.WebSocketResponse, name: str) -> None:
        self.request = request
        self.ws = ws
        self.name = name
        self.turn: asyncio.Task[None] | None = None
        self.run_id: str | None = None
        self.closing = False
        self._send = asyncio.Lock()  # the turn and the reader both write

    @property
    def busy(self) -> bool:
        return self.turn is not None and not self.turn.done()

    async def send(self, body: dict[str, Any]) -> None:
        async with self._send:
            if not self.ws.closed:
                await self.ws.send_str(dumps(body).decode())

    async def refuse(self, error: ApiError, run_id: str | None = None) -> None:
        body: dict[str, Any] = {
            "type": "error",
            "message": error.message,
            "field": error.param,
            "code": error.code,
            "status": error.status,
        }
        if run_id is not None:
            body["run_id"] = run_id
        await self.send(body)

    async def receive(self, data: str) -> None:
        try:
            message = orjson.loads(data)
        except orjson.JSONDecodeError as exc:
            await self.refuse(ApiError(400, f"not valid JSON: {exc}", code="invalid_json"))
            return
        kind = message.get("type") if isinstance(message, dict) else None
        if kind == "ping":
            await self.send({"type": "pong"})
        elif kind == "cancel":
            await self.cancel()
        elif kind == "generate":
            await self.start(message)
        elif not isinstance(message, dict):
            await self.refuse(ApiError(400, "a message is a JSON object", code="invalid_json"))
        else:
            await self.refuse(invalid("type", "must be 'generate', 'cancel' or 'ping'"))

    async def start(self, message: dict[str, Any]) -> None:
        if self.closing:
            await self.refuse(ApiError(503, "the server is shutting down", code="stopping"))
            return
        if self.busy:
            await self.refuse(
                ApiError(
                    409,
                    "a turn is running on this socket: wait for its finish, or cancel it",
                    param="type",
                    code="turn_running",
                )
            )
            return
        try:
            body = parse_run(message, also=("type",))
        except ApiError as error:
            await self.refuse(error)
            return
        self.turn = asyncio.create_task(self._run(body))

    async def cancel(self) -> None:
        turn = self.turn
        if turn is None or turn.done():
            await self.refuse(invalid("type", "no turn is running"))
            return
        turn.cancel()
        await asyncio.wait({turn})
        await self.refuse(
            ApiError(499, "the turn was cancelled", code="cancelled"), run_id=self.run_id
        )

    async def _run(self, body: Any) -> None:
        gateway = self.request.app[GATEWAY]
        self.run_id = None
        try:
            with gateway.using_router():
                try:
                    agent = find_agent(gateway, self.name)
                    turn = await prepare_turn(self.request, agent, body, self.request.headers)
                except ApiError as refused:
                    await self.refuse(refused)
                    return
                self.run_id = turn.run_id
                events = agent.stream(body.messages, **turn.arguments())
                async with aclosing(events):
                    async for event in events:
                        failure = None
                        if isinstance(event, Error):
                            failure = run_error(event.exception, turn.run_id)
                        elif isinstance(event, Finished):
                            record_usage(self.request, event.result.usage)
                        kind, fields = event_body(event, failure)
                        message = {"type": kind, "run_id": turn.run_id, **fields}
                        if kind == "error":
                            message["field"] = fields.get("param")
                        await self.send(message)
        except ConnectionResetError:
            pass  # the peer left mid-turn; the run was closed on the way out
        finally:
            if self.closing and not self.ws.closed:
                await self.ws.close(code=WSCloseCode.GOING_AWAY, message=b"server shutdown")

    async def shutdown(self) -> None:
        self.closing = True
        if not self.busy and not self.ws.closed:
            await self.ws.close(code=WSCloseCode.GOING_AWAY, message=b"server shutdown")

    async def end(self) -> None:
        """The socket is closed: cancel a turn still running."""
        turn = self.turn
        if turn is not None and not turn.done():
            turn.cancel()
            await asyncio.wait({turn})


class Sockets:
    """The open agent sockets of one app, told on shutdown."""

    def __init__(self) -> None:
        self.sessions: set[_Session] = set()

    async def shutdown(self, _: web.Application) -> None:
        for session in list(self.sessions):
            await session.shutdown()


SOCKETS: web.AppKey[Sockets] = web.AppKey("bastion.agent_sockets", Sockets)


async def agent_socket(request: web.Request) -> web.StreamResponse:
    """Upgrade to a WebSocket and serve turns until either side closes."""
    gateway = request.app[GATEWAY]
    name = request.match_info["name"]
    find_agent(gateway, name)  # an unknown agent is a 404, before the upgrade
    header_context(request.headers)  # and a context header that is not UTF-8 a 400
    ws = web.WebSocketResponse(max_msg_size=gateway.config.server.max_body, heartbeat=HEARTBEAT)
    if not ws.can_prepare(request).ok:
        raise ApiError(
            400,
            "this endpoint speaks WebSocket: send a GET with 'Upgrade: websocket'",
            code="websocket_required",
        )
    sockets = request.app[SOCKETS]
    await ws.prepare(request)
    session = _Session(request, ws, name)
    sockets.sessions.add(session)
    try:
        async for message in ws:
            if message.type is WSMsgType.TEXT:
                await session.receive(message.data)
            elif message.type is WSMsgType.BINARY:
                await session.refuse(
                    ApiError(400, "send JSON as text messages", code="invalid_json")
                )
    finally:
        sockets.sessions.discard(session)
        await session.end()
    return ws


def add_agent_socket_routes(app: web.Application) -> None:
    sockets = Sockets()
    app[SOCKETS] = sockets
    app.on_shutdown.append(sockets.shutdown)
    app.router.add_get("/api/v1/agents/{name}/ws", agent_socket)
