"""The control plane under `/api/v1`: health, status, isolation, config, metrics, events.

    GET  /api/v1/health                 liveness and readiness (no key needed)
    GET  /api/v1/status                 endpoints, model groups, uptime, config origin
    POST /api/v1/endpoints/{id}/isolate take an endpoint out of service by hand
    POST /api/v1/endpoints/{id}/recover put it back
    PUT  /api/v1/config                 validate and swap in a new config (YAML or JSON)
    GET  /api/v1/metrics                Prometheus text format
    GET  /api/v1/events                 the router's events as SSE (see `events`)

Everything but health is for admin keys; the auth middleware enforces that. Nothing
here depends on it for correctness: every handler validates its own input.

With `bastion serve --workers N` a request reaches whichever worker the kernel picked.
Writes (config PUT, isolate, recover) are applied on every worker before they answer,
and the metrics page and the event stream cover all workers (`workers.peers` is the
hook). Breakers, health, ejection, rate limits and the status page's counters are the
answering worker's own: the status page says which worker and what is per worker.
"""

from __future__ import annotations

import os
import time
from typing import Literal

from aiohttp import web

from bastion.config import BastionConfig, ConfigError, load_config
from bastion.observability.metrics import CONTENT_TYPE
from bastion.routing import Router
from bastion.routing.status import EndpointStatus as LiveStatus
from bastion.server.auth import actor
from bastion.server.common import json_response
from bastion.server.control.bodies import (
    ConfigOrigin,
    EndpointStatus,
    GroupStatus,
    Health,
    Reloaded,
    Status,
)
from bastion.server.control.events import add_event_routes
from bastion.server.errors import ApiError, invalid
from bastion.server.gateway import Gateway
from bastion.server.keys import GATEWAY
from bastion.server.workers.peers import PER_WORKER, SHARED, peers_of


class ControlState:
    """What the control plane itself remembers about one app."""

    def __init__(self) -> None:
        # The last config PUT, to tell on the status page whether the live config is
        # that one or the file's, and when it was PUT (on whichever worker took it).
        self.put_config: BastionConfig | None = None
        self.put_at: float | None = None


CONTROL: web.AppKey[ControlState] = web.AppKey("bastion.control", ControlState)


def _endpoint(status: LiveStatus) -> EndpointStatus:
    return {
        "id": status.id,
        "model": status.model,
        "provider": status.provider,
        "breaker": status.breaker.value,
        "reopens_in": round(status.reopens_in, 3),
        "ejected": status.ejected,
        "healthy": status.healthy,
        "isolated": status.isolated,
        "in_flight": status.in_flight,
        "served": status.served,
        "failed": status.failed,
        "latency_ms": None if status.latency_ms is None else round(status.latency_ms, 3),
        "ttft_ms": None if status.ttft_ms is None else round(status.ttft_ms, 3),
        "in_service": status.in_service,
    }


def _groups(router: Router) -> list[GroupStatus]:
    return [
        {
            "name": name,
            "strategy": group.strategy,
            "targets": [t.endpoint for t in group.targets],
            "fallbacks": list(group.fallbacks),
            "degraded": group.degraded is not None,
            "hedge": group.hedge is not None,
        }
        for name, group in router.groups.items()
    ]


# --- health and status -------------------------------------------------------------


async def health(request: web.Request) -> web.Response:
    """Readiness by default: 200 when the gateway has started and at least one endpoint
    is in service, else 503, so a load balancer stops sending traffic that could only
    fail. `?probe=live` is liveness: 200 while the process answers at all (restarting
    a process because its upstreams are down would not bring them back)."""
    gateway = request.app[GATEWAY]
    probe = request.query.get("probe", "ready")
    if probe not in ("live", "ready"):
        raise invalid("probe", f"expected 'live' or 'ready', got {probe!r}")
    statuses = gateway.router.status()
    in_service = sum(1 for s in statuses if s.in_service)
    ready = gateway.ready and in_service > 0
    state: Literal["ok", "degraded", "starting", "stopping"]
    if gateway.stopping:
        state = "stopping"
    elif not gateway.ready:
        state = "starting"
    elif in_service == len(statuses):
        state = "ok"
    else:
        state = "degraded"
    body: Health = {
        "status": state,
        "live": True,
        "ready": ready,
        "endpoints_in_service": in_service,
        "endpoints": len(statuses),
    }
    return json_response(body, 200 if ready or probe == "live" else 503)


def _config_origin(gateway: Gateway, control: ControlState) -> ConfigOrigin:
    loaded_at = gateway.loaded_at
    if control.put_config is not None and control.put_config is gateway.config:
        put_at = control.put_at if control.put_at is not None else loaded_at
        return {"origin": "api", "source": None, "loaded_at": put_at}
    if gateway.source is not None:
        return {"origin": "file", "source": str(gateway.source), "loaded_at": loaded_at}
    return {"origin": "code", "source": None, "loaded_at": loaded_at}


async def status(request: web.Request) -> web.Response:
    """Every endpoint's state and counters, the model groups, uptime and where the
    config came from. The numbers are this worker's (`per_worker` lists what each
    worker keeps for itself, `shared` what all have the same of)."""
    gateway = request.app[GATEWAY]
    router = gateway.router
    peers = peers_of(request.app)
    body: Status = {
        "pid": os.getpid(),
        "worker": peers.index,
        "workers": peers.count,
        "state_scope": "worker",
        "per_worker": list(PER_WORKER),
        "shared": list(SHARED),
        "ready": gateway.ready,
        "uptime_s": round(time.time() - gateway.started_at, 3),
        "config": _config_origin(gateway, request.app[CONTROL]),
        "default_model": gateway.config.default_model,
        "endpoints": [_endpoint(s) for s in router.status()],
        "models": _groups(router),
    }
    return json_response(body)


# --- isolation -----------------------------------------------------------------------


async def _set_isolation(request: web.Request, isolated: bool) -> web.Response:
    gateway = request.app[GATEWAY]
    endpoint = request.match_info["id"]
    action = "isolate" if isolated else "recover"
    who = actor(request)
    try:
        current = await gateway.set_isolation(endpoint, isolated)
    except KeyError:
        gateway.audit.record(who, action, endpoint, "not_found")
        raise ApiError(
            404, f"no endpoint {endpoint!r}", param="id", code="endpoint_not_found"
        ) from None
    gateway.audit.record(who, action, endpoint, "ok")
    applied = await peers_of(request.app).share_isolation(endpoint, isolated)
    return json_response(_endpoint(current), headers=applied.headers())


async def isolate(request: web.Request) -> web.Response:
    """Take the endpoint out of service until `recover`; requests go to the others.
    Attempts already running on it finish. Isolation survives a config reload for an
    endpoint the new config keeps."""
    return await _set_isolation(request, True)


async def recover(request: web.Request) -> web.Response:
    """Put an isolated endpoint back into service (its breaker and health still apply)."""
    return await _set_isolation(request, False)


# --- config --------------------------------------------------------------------------


def _config_error(error: ConfigError) -> ApiError:
    # The detail names the field, not the body ("<config>"): the caller knows which
    # body it sent. The field is `param`, as in every other 400.
    line = f"line {error.line}: " if error.line is not None else ""
    return ApiError(
        400,
        f"invalid config: {line}{error.detail}",
        param=error.field,
        code="invalid_config",
        extra={"line": error.line},
    )


def _config_text(raw: bytes) -> str:
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise invalid("body", "the config must be UTF-8 text") from None
    if not text.strip():
        raise invalid("body", "the body is empty; send the config as YAML or JSON")
    # load_config takes a one-line string ending in ".yaml" for a path; a body is
    # text and must never name a file on this host. A newline keeps it text.
    return text if text.endswith("\n") else text + "\n"


async def put_config(request: web.Request) -> web.Response:
    """Replace the live config with the body (YAML, or JSON, which is YAML too).

    The body is validated in full first; a bad one answers 400 naming the line and
    the field, and changes nothing. A good one is swapped in atomically: requests in
    flight finish on the config they started with, unchanged endpoints keep their
    connections, breaker, health and isolation.

    The config is not written to disk. The file the server started from stays as it
    was, a SIGHUP re-reads that file (replacing what was PUT here), and a restart
    starts from it.

    The body is judged against the policy of the file the server started from (see
    `bastion.config.trust`): its tools only from the modules that file allows, its
    `${ENV}` references only to variables that file references or lists in
    `server.env_allow` (resolved from the server's environment, as in the file), its
    secrets as `${ENV}` references, and `server.tool_modules`, `env_allow` and
    `allow_literal_secrets` as the file has them. Settings read once at start-up
    (`server.host`, `port`, `max_body`, `drain_timeout`) take effect at the next
    restart; `auth` takes effect at once, so a config without the caller's admin key
    locks the caller out.
    """
    gateway = request.app[GATEWAY]
    control = request.app[CONTROL]
    who = actor(request)
    try:
        text = _config_text(await request.read())
    except ApiError:
        gateway.audit.record(who, "reload", "api", "rejected: body")
        raise
    try:
        config = load_config(text, trust=gateway.trust)
        # Builds and starts the new router, then swaps.
        await gateway.reload(config, gateway.trust)
    except ConfigError as exc:
        gateway.audit.record(who, "reload", "api", f"rejected: {exc.detail}")
        raise _config_error(exc) from None
    except Exception:
        gateway.audit.record(who, "reload", "api", "failed")
        raise
    control.put_config = config
    control.put_at = gateway.loaded_at
    gateway.audit.record(who, "reload", "api", "ok")
    router = gateway.router
    applied = await peers_of(request.app).share_config(text, config, list(router.endpoints))
    body: Reloaded = {
        "status": "reloaded",
        "endpoints": list(router.endpoints),
        "models": list(router.groups),
        "workers": applied.workers,
        "workers_applied": applied.applied,
    }
    return json_response(body, headers=applied.headers())


# --- metrics -------------------------------------------------------------------------


async def metrics(request: web.Request) -> web.Response:
    """Prometheus text format: the counters and histograms kept from events, and the
    per-endpoint gauges read from the live router now. With several workers, counters
    and histograms are summed over them and gauges carry a `worker` label."""
    gateway = request.app[GATEWAY]
    page = await peers_of(request.app).metrics_page(gateway.metrics.render(gateway.router.status()))
    return web.Response(body=page, headers={"Content-Type": CONTENT_TYPE})


def add_control_routes(app: web.Application) -> None:
    control = ControlState()
    app[CONTROL] = control
    app.router.add_get("/api/v1/health", health)
    app.router.add_get("/api/v1/status", status)
    app.router.add_post("/api/v1/endpoints/{id}/isolate", isolate)
    app.router.add_post("/api/v1/endpoints/{id}/recover", recover)
    app.router.add_put("/api/v1/config", put_config)
    app.router.add_get("/api/v1/metrics", metrics)
    add_event_routes(app)
