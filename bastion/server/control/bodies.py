"""The control plane's answers, as types: the handlers build them as plain dicts, the
OpenAPI document is generated from them (`common.components`)."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field
from typing_extensions import TypedDict


class Health(TypedDict):
    """Liveness and readiness."""

    status: Literal["ok", "degraded", "starting", "stopping"]
    live: bool
    ready: bool
    endpoints_in_service: int
    endpoints: int


class EndpointStatus(TypedDict):
    """One endpoint's state and counters, as this worker sees them."""

    id: str
    model: str
    provider: str
    breaker: Literal["closed", "open", "half_open"]
    reopens_in: Annotated[float, Field(description="Seconds until the breaker lets a probe.")]
    ejected: bool
    healthy: bool
    isolated: bool
    in_flight: int
    served: int
    failed: int
    latency_ms: float | None
    ttft_ms: float | None
    in_service: bool


class ConfigOrigin(TypedDict):
    origin: Literal["file", "api", "code"]
    source: str | None
    loaded_at: float | None


class GroupStatus(TypedDict):
    name: str
    strategy: str
    targets: list[str]
    fallbacks: list[str]
    degraded: bool
    hedge: bool


class Status(TypedDict):
    """Endpoints, model groups, uptime and where the config came from."""

    pid: Annotated[int, Field(description="The worker process that answered.")]
    worker: Annotated[int, Field(description="Its index among the workers, from 0.")]
    workers: Annotated[int, Field(description="How many worker processes serve the port.")]
    state_scope: Annotated[
        Literal["worker"], Field(description="`worker`: the state below is this worker's.")
    ]
    per_worker: Annotated[
        list[str], Field(description="What each worker keeps for itself (breakers, limits).")
    ]
    shared: Annotated[
        list[str], Field(description="What every worker has the same of (config, isolation).")
    ]
    ready: bool
    uptime_s: float
    config: ConfigOrigin
    default_model: str | None
    endpoints: list[EndpointStatus]
    models: list[GroupStatus]


class Reloaded(TypedDict):
    """A config swapped in: its endpoints and model groups."""

    status: Literal["reloaded"]
    endpoints: list[str]
    models: list[str]
    workers: Annotated[int, Field(description="How many worker processes serve the port.")]
    workers_applied: Annotated[
        int,
        Field(description="How many have the new config now (the others get it on restart)."),
    ]


TYPES = (Health, Status, EndpointStatus, Reloaded)
