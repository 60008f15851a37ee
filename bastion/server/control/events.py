"""`GET /api/v1/events`: the router's events as server-sent events.

    event: failed_over
    data: {"worker":0,"request_id":"…","endpoint":"primary","kind":"server_error","reason":"…"}

Each event is named by its type in snake case; `data` is the event's fields as JSON
(enums as their values), after `worker`: the index of the worker process it happened
in. With `bastion serve --workers N` the stream carries every worker's events. A
comment line (`: keep-alive`) goes out when nothing happened for `keepalive` seconds,
so proxies keep the connection and a client that left is noticed. The stream ends
when the server shuts down.

The subscription must never slow the router down: the hook only appends to a bounded
per-client queue. A client that reads too slowly loses the oldest events; it is told
how many with an `event: dropped` (`{"count": n}`), and the drops are counted in
`bastion_events_dropped_total`.
"""

from __future__ import annotations

import asyncio
import re
from collections import deque
from dataclasses import dataclass

import orjson
from aiohttp import web

from bastion.observability.events import Event
from bastion.server.errors import ApiError
from bastion.server.keys import GATEWAY
from bastion.server.workers.peers import peers_of


@dataclass(frozen=True, slots=True)
class EventStreamOptions:
    """`keepalive`: seconds of silence before a comment line. `queue_size`: events held
    per client before the oldest are dropped (a burst of failovers is hundreds)."""

    keepalive: float = 15.0
    queue_size: int = 1024


# Set on the app (before it starts) to change the defaults, e.g. in tests.
EVENT_STREAM_OPTIONS: web.AppKey[EventStreamOptions] = web.AppKey(
    "bastion.event_stream_options", EventStreamOptions
)

_WORD = re.compile(r"(?<!^)(?=[A-Z])")
_NAMES: dict[type, bytes] = {}


def event_name(event: Event) -> bytes:
    """`FailedOver` → `failed_over`, cached per type."""
    cls = type(event)
    name = _NAMES.get(cls)
    if name is None:
        name = _NAMES[cls] = _WORD.sub("_", cls.__name__).lower().encode()
    return name


def encode_event(event: Event, worker: int = 0) -> bytes:
    """One SSE frame. orjson writes dataclasses field by field and enums as values;
    `worker` (the worker process it happened in) goes first."""
    data = b'{"worker":%d,' % worker + orjson.dumps(event)[1:]
    return b"event: " + event_name(event) + b"\ndata: " + data + b"\n\n"


class _Client:
    """One listener's bounded queue. `push` is the event hook: it runs inside the
    router's call stack, so it only appends and wakes the writer. It takes events, and
    frames already encoded by another worker."""

    __slots__ = ("_queue", "_wake", "closed", "dropped")

    def __init__(self, size: int) -> None:
        self._queue: deque[Event | bytes] = deque(maxlen=size)
        self._wake = asyncio.Event()
        self.dropped = 0
        self.closed = False

    def push(self, event: Event | bytes) -> None:
        if len(self._queue) == self._queue.maxlen:
            self.dropped += 1  # the deque drops the oldest as this one goes in
        self._queue.append(event)
        self._wake.set()

    def close(self) -> None:
        self.closed = True
        self._wake.set()

    async def wait(self) -> None:
        """Until something is queued or the stream is closed."""
        if not self._queue and not self.closed:
            await self._wake.wait()

    def take(self) -> tuple[list[Event | bytes], int]:
        """Everything queued and the number dropped since the last take. Synchronous,
        so no push can slip in between reading the queue and clearing the wake-up."""
        events = list(self._queue)
        self._queue.clear()
        dropped, self.dropped = self.dropped, 0
        self._wake.clear()
        return events, dropped


class EventStreams:
    """The open event streams of one app, closed together on shutdown."""

    def __init__(self) -> None:
        self._clients: set[_Client] = set()
        self.closing = False

    def open(self, size: int) -> _Client:
        client = _Client(size)
        self._clients.add(client)
        return client

    def discard(self, client: _Client) -> None:
        self._clients.discard(client)

    def __len__(self) -> int:
        return len(self._clients)

    async def close(self, _: web.Application | None = None) -> None:
        self.closing = True
        for client in list(self._clients):
            client.close()


EVENT_STREAMS: web.AppKey[EventStreams] = web.AppKey("bastion.event_streams", EventStreams)


def _gone(request: web.Request) -> bool:
    transport = request.transport
    return transport is None or transport.is_closing()


async def events(request: web.Request) -> web.StreamResponse:
    """Stream the router's events until the client leaves or the server stops."""
    gateway = request.app[GATEWAY]
    streams = request.app[EVENT_STREAMS]
    options = request.app.get(EVENT_STREAM_OPTIONS) or EventStreamOptions()
    if streams.closing:
        raise ApiError(503, "the server is shutting down", type="server_error", code="stopping")
    response = web.StreamResponse(
        headers={
            "Content-Type": "text/event-stream",
            "Cache-Control": "no-cache",
            # nginx buffers responses by default, which would hold events back.
            "X-Accel-Buffering": "no",
        }
    )
    await response.prepare(request)
    client = streams.open(options.queue_size)
    unsubscribe = gateway.fanout.subscribe(client.push)
    peers = peers_of(request.app)
    stop_relays = peers.relay_events(client.push)  # the other workers' events
    try:
        # Something at once, so the client knows the subscription is live.
        await response.write(b": subscribed\n\n")
        while not client.closed:
            try:
                async with asyncio.timeout(options.keepalive):
                    await client.wait()
            except TimeoutError:
                pass  # silence: send a keep-alive below
            batch, dropped = client.take()
            if dropped:
                gateway.metrics.observe_events_dropped(dropped)
            if not batch and not dropped:
                if client.closed:
                    break
                # Without handler cancellation a departed client is only noticed here.
                if _gone(request):
                    return response
                await response.write(b": keep-alive\n\n")
                continue
            frames = [
                event if isinstance(event, bytes) else encode_event(event, peers.index)
                for event in batch
            ]
            if dropped:
                # The dropped events were older than any still queued: report them first.
                frames.insert(0, b'event: dropped\ndata: {"count":%d}\n\n' % dropped)
            await response.write(b"".join(frames))
        await response.write_eof()
    except ConnectionResetError:
        pass  # the client left; nothing to tell it
    finally:
        stop_relays()
        unsubscribe()
        streams.discard(client)
    return response


def add_event_routes(app: web.Application) -> None:
    streams = EventStreams()
    app[EVENT_STREAMS] = streams
    app.on_shutdown.append(streams.close)
    app.router.add_get("/api/v1/events", events)
