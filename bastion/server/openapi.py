"""The OpenAPI 3.1 document served at `GET /openapi.json`.

Hand-written rather than derived from the handlers: the chat body is parsed by hand on
the hot path (`openai_codec`), so there is no model to derive it from, and a contract
written down on its own is one the tests can hold the code to (the gateway suite runs
schemathesis against this document). It describes what clients may send and what they
get back; where the server accepts more (unknown chat fields go upstream as they
came), the schema says so rather than listing OpenAI's every field.

Built once per app; every caller gets the same bytes.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from importlib import metadata
from typing import Any

import orjson
from aiohttp import web

from bastion.server.agents.schema import AGENT_SCHEMAS, agent_paths
from bastion.server.control.schema import _CONTROL_SCHEMAS, _ENDPOINT_ID
from bastion.server.openai.schema import (
    _ANSWER_HEADERS,
    _CHAT_EXAMPLES,
    _CHAT_SCHEMAS,
    _ERROR,
    _ERRORS,
    _JSON,
    _STR,
    _STREAM_EVENT,
    Schema,
    _body,
    _errors,
    _json_text,
    _ref,
    _sse_event,
)


def _operation(
    operation_id: str, summary: str, ok: Schema, errors: Sequence[str], **extra: Any
) -> Schema:
    """An operation answering `ok` with 200, or one of the named `errors`."""
    return {
        "operationId": operation_id,
        "summary": summary,
        **extra,
        "responses": {"200": ok, **_errors(*errors)},
    }


_ADMIN = ("Unauthorized", "Forbidden")


def _paths() -> Schema:
    endpoint_change = {
        action: _operation(
            f"{action}Endpoint",
            summary,
            _body(_ref("EndpointStatus"), "The endpoint after the change."),
            (*_ADMIN, "NotFound"),
            parameters=[_ENDPOINT_ID],
        )
        for action, summary in (
            ("isolate", "Take an endpoint out of service by hand, until recovered."),
            ("recover", "Put an isolated endpoint back in service."),
        )
    }
    health = _operation(
        "health",
        "Readiness (default) or liveness (`probe=live`); needs no key.",
        _body(_ref("Health"), "Ready: started, and an endpoint is in service."),
        ("BadRequest",),
        security=[],
        parameters=[
            {"name": "probe", "in": "query", "schema": {"enum": ["ready", "live"]}},
        ],
    )
    health["responses"]["503"] = _body(_ref("Health"), "Not ready: starting, stopping, or down.")
    paths: Schema = {
        "/v1/chat/completions": {
            "post": _operation(
                "createChatCompletion",
                "A chat completion, streamed or not, failing over across endpoints.",
                {
                    "description": "The answer (JSON), or its stream (server-sent events).",
                    "headers": _ANSWER_HEADERS,
                    "content": {
                        _JSON: {"schema": _ref("ChatCompletion")},
                        "text/event-stream": {"schema": _STREAM_EVENT},
                    },
                },
                tuple(_ERRORS),
                requestBody={
                    "required": True,
                    "content": {_JSON: {"schema": _ref("ChatRequest"), "examples": _CHAT_EXAMPLES}},
                },
            )
        },
        "/v1/models": {
            "get": _operation(
                "listModels",
                "The model groups and endpoints this key may use.",
                _body(_ref("ModelList"), "The models."),
                ("Unauthorized",),
            )
        },
        "/api/v1/health": {"get": health},
        "/api/v1/status": {
            "get": _operation(
                "status",
                "Endpoints (breaker, ejection, health, isolation, load), model groups, "
                "uptime and where the config came from, as seen by the answering worker.",
                _body(_ref("Status"), "A snapshot."),
                _ADMIN,
            )
        },
        "/api/v1/endpoints/{id}/isolate": {"post": endpoint_change["isolate"]},
        "/api/v1/endpoints/{id}/recover": {"post": endpoint_change["recover"]},
        "/api/v1/config": {
            "put": _operation(
                "putConfig",
                "Validate a config and swap it in atomically. Requests in flight finish on "
                "the config they started with; unchanged endpoints keep their "
                "connections, breakers, health and isolation. Not written to disk.",
                _body(_ref("Reloaded"), "Swapped in."),
                ("BadRequest", *_ADMIN),
                requestBody={
                    "required": True,
                    "content": {
                        "application/yaml": {"schema": {"type": "string"}},
                        _JSON: {"schema": {"type": "object"}},
                    },
                },
            )
        },
        "/api/v1/metrics": {
            "get": _operation(
                "metrics",
                "Prometheus metrics, text exposition format.",
                _body(_STR, "The metrics.", media="text/plain"),
                _ADMIN,
            )
        },
        "/api/v1/events": {
            "get": _operation(
                "events",
                "The router's events as server-sent events (`event:` the type in snake "
                "case, `data:` its fields as JSON), until the client leaves.",
                _body(
                    _sse_event(
                        _json_text({"type": "object"}),
                        "An event's fields; `dropped` tells how many a slow reader lost.",
                        event=_STR,
                    ),
                    "The event stream.",
                    media="text/event-stream",
                ),
                (*_ADMIN, "UpstreamFailed"),
            )
        },
        "/openapi.json": {
            "get": _operation(
                "openapi",
                "This document.",
                _body({"type": "object"}, "The OpenAPI document."),
                ("Unauthorized",),
            )
        },
    }
    for path, item in paths.items():
        for operation in item.values():
            if path.startswith(("/v1/", "/api/v1/")):
                operation["tags"] = ["openai" if path.startswith("/v1/") else "control"]
    return {**paths, **agent_paths()}


def _version() -> str:
    try:
        return metadata.version("bastion")
    except metadata.PackageNotFoundError:  # pragma: no cover - a bare source tree
        return "0.0.0"


def build_document() -> Schema:
    """The whole document. A deep copy: the schemas above are shared module constants,
    and a caller (a test tool resolving references, say) may change what it gets."""
    document = {
        "openapi": "3.1.0",
        "info": {
            "title": "Bastion",
            "version": _version(),
            "description": "An OpenAI-compatible gateway that keeps answering when model "
            "providers fail, and its control plane.",
        },
        "servers": [{"url": "/"}],
        # Either header; the control plane (/api/v1 but health) needs an admin key.
        "security": [{"bearer": []}, {"apiKey": []}],
        "tags": [
            {"name": "openai", "description": "OpenAI-compatible: the SDKs work unchanged."},
            {"name": "control", "description": "The control plane: admin keys."},
            {"name": "agents", "description": "The config's agents: keys with their scope."},
            {"name": "memory", "description": "Agents' threads and runs: admin keys."},
        ],
        "paths": _paths(),
        "components": {
            "securitySchemes": {
                "bearer": {"type": "http", "scheme": "bearer", "description": "An auth.keys key."},
                "apiKey": {"type": "apiKey", "in": "header", "name": "x-api-key"},
            },
            "schemas": {**_CHAT_SCHEMAS, **_CONTROL_SCHEMAS, **AGENT_SCHEMAS, "Error": _ERROR},
            "responses": {
                name: _body(_ref("Error"), description, headers=headers)
                for name, (_, description, headers) in _ERRORS.items()
            },
        },
    }
    return copy.deepcopy(document)


def add_openapi_route(app: web.Application) -> None:
    """Serve the document at `GET /openapi.json`, serialized once, here."""
    body = orjson.dumps(build_document())

    async def openapi(request: web.Request) -> web.Response:
        return web.Response(body=body, content_type=_JSON)

    app.router.add_get("/openapi.json", openapi)
