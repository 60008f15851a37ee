"""A worker's private control app, on its Unix socket (`protocol.worker_socket`):

    POST /sync             apply a SharedState from the hub
    GET  /metrics          this worker's own metrics page
    GET  /api/v1/events    this worker's own events (siblings relay them)

and `StateSync`, which applies a shared state to the live gateway.
"""

from __future__ import annotations

import asyncio

from aiohttp import web

from bastion.config import BastionConfig, ConfigError, load_config
from bastion.observability.metrics import CONTENT_TYPE
from bastion.server.control.api import ControlState
from bastion.server.control.events import add_event_routes
from bastion.server.gateway import Gateway
from bastion.server.keys import GATEWAY
from bastion.server.workers.peers import PEERS, Peers
from bastion.server.workers.protocol import SharedState


class StateSync:
    """Brings the gateway to a `SharedState`, each version once and in order."""

    def __init__(self, gateway: Gateway, control: ControlState) -> None:
        self._gateway = gateway
        self._control = control
        self._lock = asyncio.Lock()
        self.version = 0
        self._text: str | None = None
        self._config: BastionConfig | None = None

    def record(self, text: str, config: BastionConfig) -> None:
        """`config`, parsed from `text`, was made live here: a state with the same text
        need not reload it while it is still the live one."""
        self._text, self._config = text, config

    async def apply(self, state: SharedState) -> None:
        """Reload the config if it differs from the live one, then isolate and recover
        until the isolated endpoints are exactly the state's. ConfigError if the text
        does not load here (nothing changes then)."""
        async with self._lock:
            if state.version <= self.version:
                return
            gateway = self._gateway
            text = state.config
            if text is not None and not (text == self._text and gateway.config is self._config):
                # Held to the start-up file's policy here too, as the PUT was.
                config = load_config(text, trust=gateway.trust)
                await gateway.reload(config, gateway.trust)
                self._control.put_config = config
                self._control.put_at = state.put_at
                self.record(text, config)
                gateway.audit.record("supervisor", "reload", "api", "ok")
            wanted = set(state.isolated)
            for status in gateway.router.status():
                if status.isolated != (status.id in wanted):
                    await gateway.set_isolation(status.id, status.id in wanted)
                    action = "isolate" if status.id in wanted else "recover"
                    gateway.audit.record("supervisor", action, status.id, "ok")
            self.version = state.version


def private_app(gateway: Gateway, sync: StateSync, index: int, count: int) -> web.Application:
    # The state carries a whole config; the public PUT took it under server.max_body.
    app = web.Application(client_max_size=2 * gateway.config.server.max_body)
    app[GATEWAY] = gateway
    # These routes are this worker's alone: its event stream relays no siblings.
    app[PEERS] = Peers(index, count)

    async def apply(request: web.Request) -> web.Response:
        state = SharedState.from_json(await request.json())
        try:
            await sync.apply(state)
        except ConfigError as exc:
            return web.json_response({"error": str(exc)}, status=400)
        return web.json_response({"version": sync.version})

    async def metrics(request: web.Request) -> web.Response:
        page = gateway.metrics.render(gateway.router.status())
        return web.Response(body=page, headers={"Content-Type": CONTENT_TYPE})

    app.router.add_post("/sync", apply)
    app.router.add_get("/metrics", metrics)
    add_event_routes(app)
    return app
