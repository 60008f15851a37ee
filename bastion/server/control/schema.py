"""The control plane's operations in the OpenAPI document; its bodies are the types of
`bodies`."""

from __future__ import annotations

from bastion.server.common import (
    INT,
    JSON,
    OBJECT,
    STR,
    Schema,
    body_of,
    header,
    json_text,
    operation,
    ref,
    sse_event,
)
from bastion.server.control.bodies import TYPES

__all__ = ["TYPES", "paths"]

_ADMIN = ("Unauthorized", "Forbidden")

_ENDPOINT_ID: Schema = {
    "name": "id",
    "in": "path",
    "required": True,
    "description": "An endpoint id from the config.",
    "schema": {"type": "string", "pattern": "^[A-Za-z0-9_.:-]+$"},
}


# A write is applied on every worker of `bastion serve --workers N` before it answers.
_APPLIED: Schema = {
    "X-Bastion-Workers": header("How many worker processes serve the port.", INT),
    "X-Bastion-Workers-Applied": header("How many of them applied the change.", INT),
}


def paths() -> Schema:
    """The operations under `/api/v1/` but the agents' and the memory's."""
    endpoint_change = {
        action: operation(
            f"{action}Endpoint",
            summary,
            body_of(ref("EndpointStatus"), "The endpoint after the change.", headers=_APPLIED),
            (*_ADMIN, "NotFound"),
            parameters=[_ENDPOINT_ID],
        )
        for action, summary in (
            ("isolate", "Take an endpoint out of service by hand, until recovered."),
            ("recover", "Put an isolated endpoint back in service."),
        )
    }
    health = operation(
        "health",
        "Readiness (default) or liveness (`probe=live`); needs no key.",
        body_of(ref("Health"), "Ready: started, and an endpoint is in service."),
        ("BadRequest",),
        security=[],
        parameters=[
            {"name": "probe", "in": "query", "schema": {"enum": ["ready", "live"]}},
        ],
    )
    health["responses"]["503"] = body_of(ref("Health"), "Not ready: starting, stopping, or down.")
    out: Schema = {
        "/api/v1/health": {"get": health},
        "/api/v1/status": {
            "get": operation(
                "status",
                "Endpoints (breaker, ejection, health, isolation, load), model groups, "
                "uptime and where the config came from, as seen by the answering worker.",
                body_of(ref("Status"), "A snapshot."),
                _ADMIN,
            )
        },
        "/api/v1/endpoints/{id}/isolate": {"post": endpoint_change["isolate"]},
        "/api/v1/endpoints/{id}/recover": {"post": endpoint_change["recover"]},
        "/api/v1/config": {
            "put": operation(
                "putConfig",
                "Validate a config and swap it in atomically. Requests in flight finish on "
                "the config they started with; unchanged endpoints keep their "
                "connections, breakers, health and isolation. Not written to disk.",
                body_of(ref("Reloaded"), "Swapped in, on every worker.", headers=_APPLIED),
                ("BadRequest", *_ADMIN),
                requestBody={
                    "required": True,
                    "content": {
                        "application/yaml": {"schema": STR},
                        JSON: {"schema": OBJECT},
                    },
                },
            )
        },
        "/api/v1/metrics": {
            "get": operation(
                "metrics",
                "Prometheus metrics, text exposition format.",
                body_of(STR, "The metrics.", media="text/plain"),
                _ADMIN,
            )
        },
        "/api/v1/events": {
            "get": operation(
                "events",
                "The router's events as server-sent events (`event:` the type in snake "
                "case, `data:` its fields as JSON), until the client leaves.",
                body_of(
                    sse_event(
                        json_text(OBJECT),
                        "An event's fields; `dropped` tells how many a slow reader lost.",
                        event=STR,
                    ),
                    "The event stream.",
                    media="text/event-stream",
                ),
                (*_ADMIN, "UpstreamFailed"),
            )
        },
    }
    for item in out.values():
        for op in item.values():
            op["tags"] = ["control"]
    return out
