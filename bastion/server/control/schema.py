"""The control plane's schemas for the OpenAPI document (see `openapi.py`)."""

from __future__ import annotations

from bastion.server.openai.schema import (
    _BOOL,
    _INT,
    _NUM,
    _STR,
    Schema,
    _array,
    _object,
    _ref,
)

_CONTROL_SCHEMAS: Schema = {
    "Health": _object(
        {
            "status": {"enum": ["ok", "degraded", "starting", "stopping"]},
            "live": _BOOL,
            "ready": _BOOL,
            "endpoints_in_service": _INT,
            "endpoints": _INT,
        },
        ["live", "ready"],
    ),
    "Status": _object(
        {
            "pid": {"type": "integer", "description": "The worker process that answered."},
            "state_scope": {"type": "string", "description": "`process`: per worker."},
            "ready": _BOOL,
            "uptime_s": _NUM,
            "config": _object(
                {
                    "origin": {"enum": ["file", "api", "code"]},
                    "source": {"type": ["string", "null"]},
                    "loaded_at": {"type": ["number", "null"]},
                }
            ),
            "default_model": {"type": ["string", "null"]},
            "endpoints": _array(_ref("EndpointStatus")),
            "models": _array(
                _object(
                    {
                        "name": _STR,
                        "strategy": _STR,
                        "targets": _array(_STR),
                        "fallbacks": _array(_STR),
                        "degraded": _BOOL,
                        "hedge": _BOOL,
                    }
                )
            ),
        },
        ["pid", "endpoints"],
    ),
    "EndpointStatus": _object(
        {
            "id": _STR,
            "model": _STR,
            "provider": _STR,
            "breaker": {"enum": ["closed", "open", "half_open"]},
            "reopens_in": _NUM,
            "ejected": _BOOL,
            "healthy": _BOOL,
            "isolated": _BOOL,
            "in_service": _BOOL,
            "in_flight": _INT,
            "served": _INT,
            "failed": _INT,
            "latency_ms": {"type": ["number", "null"]},
            "ttft_ms": {"type": ["number", "null"]},
        },
        ["id", "breaker", "isolated", "in_service"],
    ),
    "Reloaded": _object(
        {"status": {"const": "reloaded"}, "endpoints": _array(_STR), "models": _array(_STR)},
        ["status"],
    ),
}

_ENDPOINT_ID: Schema = {
    "name": "id",
    "in": "path",
    "required": True,
    "description": "An endpoint id from the config.",
    "schema": {"type": "string", "pattern": "^[A-Za-z0-9_.:-]+$"},
}
