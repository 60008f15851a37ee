"""The gateway's state: the live router and agents, config, keys, limits, metrics, events.

A reload builds a new router from the new config (unchanged endpoints keep their
connections, breakers and health) and swaps it in one assignment. A request holds
the router it started with until it ends, so requests in flight finish on the config
they started with; the old router is closed once the last of them is done. The agents
are rebuilt against the new router and swapped in with it (see `agents.host`).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import structlog

from bastion.agents.configure import plan_agents
from bastion.config import BastionConfig, ConfigError, load_config
from bastion.config.trust import ConfigTrust
from bastion.observability.events import Event, EventHook
from bastion.observability.metrics import Metrics
from bastion.routing import Router
from bastion.routing.status import EndpointStatus
from bastion.server.agents.host import AgentHost, replica_id
from bastion.server.auth import AuditLog, KeyRing, RateLimits

if TYPE_CHECKING:
    from opentelemetry.trace import TracerProvider

    from bastion.server.tracing import GatewayTracing

_log = structlog.get_logger("bastion.server")


class EventFanout:
    """Hands every event to the current subscribers (metrics, SSE clients, logs). One
    instance outlives the routers, so a reload does not lose subscribers."""

    def __init__(self) -> None:
        self._hooks: tuple[EventHook, ...] = ()

    def subscribe(self, hook: EventHook) -> Callable[[], None]:
        self._hooks = (*self._hooks, hook)

        def unsubscribe() -> None:
            self._hooks = tuple(h for h in self._hooks if h is not hook)

        return unsubscribe

    def __call__(self, event: Event) -> None:
        for hook in self._hooks:
            try:
                hook(event)
            except Exception:
                _log.exception("event subscriber failed", subscriber=repr(hook))


class RouterHold:
    """`with gateway.using_router() as router:`. A class rather than a generator-based
    context manager: it runs for every request, and costs a third as much."""

    __slots__ = ("_gateway", "_router")

    def __init__(self, gateway: Gateway) -> None:
        self._gateway = gateway
        self._router = gateway.router

    def __enter__(self) -> Router:
        self._gateway._hold(self._router)
        return self._router

    def __exit__(self, *_: object) -> None:
        self._gateway._let_go(self._router)


class Gateway:
    """Everything a request handler needs, behind one object stored on the app.

    `tracer_provider` replaces the one `tracing:` would build (tests, an application
    embedding the gateway); it is used only when the config enables tracing. `port`
    (the one asked for on the command line, else `server.port`) and `worker` (else
    $BASTION_WORKER_INDEX, else 0) make up the replica id with `source` (`replica_id`).

    `trust` is the policy a config sent over HTTP is judged against: the one the
    start-up config's own document set (`config.trust`), else the narrowest. A SIGHUP
    re-reads the file and its policy with it; a config PUT never changes it."""

    def __init__(
        self,
        config: BastionConfig,
        *,
        source: Path | None = None,
        tracer_provider: TracerProvider | None = None,
        port: int | None = None,
        worker: int | None = None,
    ) -> None:
        self.config = config
        self.source = source
        self.trust = config.trust or ConfigTrust()
        self.started_at = time.time()
        # When the live config was loaded, whichever way it came.
        self.loaded_at = self.started_at
        self.fanout = EventFanout()
        self.metrics = Metrics(known_model=self.knows_model)
        self.fanout.subscribe(self.metrics)
        self.tracing = _tracing(config, tracer_provider)
        if self.tracing is not None:
            self.fanout.subscribe(self.tracing.recorder)
        self.keys = KeyRing.from_settings(config.auth)
        self.limits = RateLimits(config.auth)
        self.audit = AuditLog()
        self.router = Router.from_config(config, hooks=[self.fanout])
        # Tools are imported here, so that a bad path stops the start (ConfigError).
        self.replica_id = replica_id(
            config.server.replica_id,
            source,
            config.server.port if port is None else port,
            worker,
        )
        self.agents = AgentHost(plan_agents(config), self.replica_id, config.durability)
        self._in_flight: dict[int, int] = {}
        self._retired: dict[int, Router] = {}
        # Reloads and isolation changes take turns: a new router copies isolation
        # from the old one, so an isolate landing mid-reload would otherwise be lost.
        self._reload_lock = asyncio.Lock()
        self.ready = False
        self.stopping = False

    async def start(self) -> None:
        await self.router.start()
        await self.agents.start(self.config.memory, self.router)
        self.ready = True

    async def close(self) -> None:
        self.ready = False
        self.stopping = True
        await self.router.aclose()
        for router in list(self._retired.values()):
            await router.aclose()
        self._retired.clear()
        await self.agents.close()
        if self.tracing is not None:  # last: closing the routers may still finish spans
            await self.tracing.close()

    def knows_model(self, name: str) -> bool:
        """Whether the live config names `name`: a model group, an endpoint or an agent.
        Metrics label only such names, so that clients cannot grow the metrics page."""
        router = self.router
        return name in router.groups or name in router.endpoints or name in self.agents.plans

    def using_router(self) -> RouterHold:
        """The router for one request, held until the request ends (a `with` block)."""
        return RouterHold(self)

    def _hold(self, router: Router) -> None:
        key = id(router)
        self._in_flight[key] = self._in_flight.get(key, 0) + 1

    def _let_go(self, router: Router) -> None:
        key = id(router)
        left = self._in_flight[key] - 1
        if left:
            self._in_flight[key] = left
            return
        del self._in_flight[key]
        retired = self._retired.pop(key, None)
        if retired is not None:
            asyncio.get_running_loop().create_task(retired.aclose())

    async def set_isolation(self, endpoint: str, isolated: bool) -> EndpointStatus:
        """Isolate or recover `endpoint` on the live router; KeyError if unknown."""
        async with self._reload_lock:
            router = self.router
            if endpoint not in router.endpoints:
                raise KeyError(endpoint)
            if isolated:
                router.isolate(endpoint)
            else:
                router.recover(endpoint)
            return next(s for s in router.status() if s.id == endpoint)

    async def reload(self, config: BastionConfig, trust: ConfigTrust | None = None) -> None:
        """Swap in a router built from `config` (already validated); its agents' tools
        only from the modules `trust` allows, when given."""
        async with self._reload_lock:
            plans = plan_agents(config, trust)  # ConfigError here: nothing has changed
            await self.agents.prepare(config.memory, plans)
            old = self.router
            if self.tracing is not None:
                self.tracing.describe(config)
            if config.tracing != self.config.tracing:
                _log.warning("tracing settings take effect at the next start")
            new = Router.from_config(config, hooks=[self.fanout], previous=old)
            await new.start()
            self.router = new
            retired_memory = self.agents.install(plans, new, config.memory)
            self.config = config
            self.loaded_at = time.time()
            self.keys = KeyRing.from_settings(config.auth)
            self.limits = self.limits.reconfigured(config.auth)
            if self._in_flight.get(id(old)):
                self._retired[id(old)] = old
            else:
                await old.aclose()
            if retired_memory is not None:
                await retired_memory.aclose()
        _log.info("config reloaded", endpoints=len(new.endpoints), groups=len(new.groups))

    async def reload_from_source(self) -> None:
        """Re-read the config file (SIGHUP), and the policy it sets for configs sent over
        HTTP. A bad file is logged and audited, naming the file, and changes nothing."""
        if self.source is None:
            _log.warning("reload asked, but the config came from no file")
            return
        source = str(self.source)
        try:
            config = load_config(self.source)
            trust = config.trust or ConfigTrust()
            await self.reload(config, trust)
        except ValueError as exc:  # ConfigError, from the file or from its agents
            # The log line says where (file, line, field); the audit line why.
            _log.error("config reload refused", file=source, error=str(exc))
            reason = exc.detail if isinstance(exc, ConfigError) else str(exc)
            self.audit.record("signal", "reload", source, f"rejected: {reason}")
            return
        self.trust = trust
        self.audit.record("signal", "reload", source, "ok")


def _tracing(config: BastionConfig, provider: TracerProvider | None) -> GatewayTracing | None:
    """The gateway's tracing, if the config enables it. Imported here, not at the top,
    so that without the `otel` extra OpenTelemetry is never loaded (the config schema
    has already refused `enabled: true` without it)."""
    if not config.tracing.enabled:
        return None
    from bastion.server.tracing import GatewayTracing

    if provider is not None:
        tracing = GatewayTracing(provider)
    else:
        tracing = GatewayTracing.from_settings(config.tracing)
    tracing.describe(config)
    return tracing
