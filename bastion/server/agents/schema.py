"""The agents, threads and runs operations of the OpenAPI document; their bodies are
the types of `bodies`.

A run body's messages are the chat API's messages, by reference, since one parser
reads both; so are the messages a result gives back.
"""

from __future__ import annotations

from pydantic import TypeAdapter

from bastion.server.agents.bodies import EVENTS, TYPES, Identifier
from bastion.server.common import (
    JSON,
    STR,
    Schema,
    body_of,
    error_responses,
    header,
    json_text,
    operation,
    query,
    ref,
    sse_event,
)

__all__ = ["TYPES", "paths"]

_ID: Schema = TypeAdapter(Identifier).json_schema()

_AGENT_NAME: Schema = {
    "name": "name",
    "in": "path",
    "required": True,
    "description": "An agent of the config's `agents:` section.",
    "schema": {"type": "string", "minLength": 1},
}


_RESOURCE = query(
    "resource_id",
    _ID,
    "The resource that owns the thread: required, unless the key is bound to one "
    "resource or sends a user's token (it is filled in).",
)
# On every agents and memory operation: binds the caller to an end user's resource.
_USER: Schema = {
    "name": "x-bastion-user",
    "in": "header",
    "required": False,
    "description": "An end user's JWT, signed with the key of `auth.user_tokens`: the "
    "request acts on that user's resource (`user:<sub>`, or the key's prefix and `sub`). "
    "A bad or expired one is a 401.",
    "schema": {"type": "string"},
}
_THREAD_ID: Schema = {"name": "id", "in": "path", "required": True, "schema": _ID}
_RUN_HEADERS: Schema = {"x-bastion-run-id": header("The run's id.", STR)}
_RUN_ERRORS = (
    "BadRequest",
    "Unauthorized",
    "Forbidden",
    "NotFound",
    "Conflict",
    "RateLimited",
    "UpstreamFailed",
)
_CONTEXT_NOTE = (
    " Runtime context also comes from headers: `x-bastion-context-user-tier: gold` is "
    '`{"user_tier": "gold"}` (lower case, dashes as underscores); the body\'s `context` '
    "wins."
)


def _run_body() -> Schema:
    return {"required": True, "content": {JSON: {"schema": ref("RunRequest")}}}


def paths() -> Schema:
    stream_event: Schema = {
        "description": "One agent event per server-sent event, ending with `finish` "
        "(the `AgentResult`) or `error`.",
        "oneOf": [
            sse_event(
                json_text(ref(fields.__name__)),
                " ".join((fields.__doc__ or name).split()),
                event={"const": name},
            )
            for name, fields in EVENTS.items()
        ],
    }
    socket = {
        "operationId": "agentSocket",
        "summary": "WebSocket: many turns on one socket. Send "
        '`{"type": "generate", ...RunRequest}`, `{"type": "cancel"}` or `{"type": "ping"}`; '
        'get each turn\'s events as `{"type": "text_delta", "run_id": ..., ...}` ending '
        'with `finish` or `error`. A bad message gets `{"type": "error", "message", '
        '"field", "code"}` and the socket stays open.' + _CONTEXT_NOTE,
        "parameters": [_AGENT_NAME],
        "responses": {
            "101": {"description": "Switched to the WebSocket protocol."},
            **error_responses("BadRequest", "Unauthorized", "Forbidden", "NotFound"),
        },
    }
    paths: Schema = {
        "/api/v1/agents": {
            "get": operation(
                "listAgents",
                "The agents this key may use, with their model and tools.",
                body_of(ref("AgentList"), "The agents."),
                # Never answered today (a key without agents gets an empty list); kept
                # so that every /api/v1 operation documents the refusal of a scope.
                ("Unauthorized", "Forbidden"),
            )
        },
        "/api/v1/agents/{name}/generate": {
            "post": operation(
                "generateAgent",
                "Run the agent to its answer." + _CONTEXT_NOTE,
                body_of(ref("AgentResult"), "The result.", headers=_RUN_HEADERS),
                _RUN_ERRORS,
                parameters=[_AGENT_NAME],
                requestBody=_run_body(),
            )
        },
        "/api/v1/agents/{name}/stream": {
            "post": operation(
                "streamAgent",
                "Run the agent; its events as server-sent events, ending with `finish` or "
                "`error`." + _CONTEXT_NOTE,
                body_of(
                    stream_event, "The events.", media="text/event-stream", headers=_RUN_HEADERS
                ),
                _RUN_ERRORS,
                parameters=[_AGENT_NAME],
                requestBody=_run_body(),
            )
        },
        "/api/v1/agents/{name}/ws": {"get": socket},
        "/api/v1/threads": {
            "get": operation(
                "listThreads",
                "A resource's threads, most recently updated first.",
                body_of(ref("ThreadList"), "The threads."),
                ("BadRequest", "Unauthorized", "Forbidden", "UpstreamFailed"),
                parameters=[
                    _RESOURCE,
                    query("limit", {"type": "integer", "minimum": 1, "maximum": 200}, "Page size."),
                    query(
                        "offset", {"type": "integer", "minimum": 0, "maximum": 1_000_000}, "Skip."
                    ),
                ],
            )
        },
        "/api/v1/threads/{id}": {
            "get": operation(
                "getThread",
                "A thread and its messages; a thread of another resource is refused (403).",
                body_of(ref("ThreadMessages"), "The thread."),
                ("BadRequest", "Unauthorized", "Forbidden", "NotFound", "UpstreamFailed"),
                parameters=[
                    _THREAD_ID,
                    _RESOURCE,
                    query(
                        "last", {"type": "integer", "minimum": 0, "maximum": 100_000}, "Newest N."
                    ),
                ],
            ),
            "delete": operation(
                "deleteThread",
                "Delete a thread and its messages; a thread of another resource is refused "
                "(403) and kept.",
                body_of(ref("Deleted"), "Deleted."),
                ("BadRequest", "Unauthorized", "Forbidden", "NotFound", "UpstreamFailed"),
                parameters=[_THREAD_ID, _RESOURCE],
            ),
        },
        "/api/v1/runs/{id}": {
            "get": operation(
                "getRun",
                "A run of an agent and its steps (model and tool calls, in order).",
                body_of(ref("Run"), "The run."),
                ("Unauthorized", "Forbidden", "NotFound", "UpstreamFailed"),
                parameters=[{"name": "id", "in": "path", "required": True, "schema": STR}],
            )
        },
    }
    for path, item in paths.items():
        tag = "agents" if path.startswith("/api/v1/agents") else "memory"
        for op in item.values():
            op["tags"] = [tag]
            op["parameters"] = [*op.get("parameters", ()), _USER]
    return paths
