"""The agents, threads and runs operations of the OpenAPI document (see `openapi.py`).

The run body's messages are the chat API's messages, by reference, since one parser
reads both; so are the messages the result gives back.
"""

from __future__ import annotations

from bastion.server.openai.schema import (
    _BOOL,
    _CHAT_SCHEMAS,
    _INT,
    _NUM,
    _STR,
    Schema,
    _array,
    _body,
    _errors,
    _header,
    _json_text,
    _object,
    _ref,
    _sse_event,
)

_ID: Schema = {"type": "string", "minLength": 1, "maxLength": 256}
_RUN_ID: Schema = {"type": "string", "pattern": "^[A-Za-z0-9_.-]{1,128}$"}
_OBJECT: Schema = {"type": "object"}
_EVENT_TYPES = [
    "text_delta",
    "tool_call",
    "tool_result",
    "step_finish",
    "model_switch",
    "finish",
    "error",
]

AGENT_SCHEMAS: Schema = {
    "ChatMessage": _CHAT_SCHEMAS["ChatRequest"]["properties"]["messages"]["items"],
    "RunRequest": _object(
        {
            "prompt": {"type": "string", "minLength": 1, "description": "One user message."},
            "messages": _array(_ref("ChatMessage"), minItems=1),
            "thread_id": {
                **_ID,
                "description": "Continue this thread (created on first use); its history "
                "comes first and the run's messages are added when it succeeds.",
            },
            "resource_id": {**_ID, "description": "Who owns the thread (a user, a tenant)."},
            "context": {
                "type": "object",
                "description": "Runtime context for the model selection, the instructions' "
                "`{key}` placeholders and the tools; over the `x-bastion-context-<key>` "
                "headers.",
            },
            "run_id": {**_RUN_ID, "description": "Names the run; new runs only."},
        },
        oneOf=[{"required": ["prompt"]}, {"required": ["messages"]}],
        additionalProperties=False,
        description="Either `prompt` or `messages`. `thread_id` needs `resource_id` for "
        "agents with memory.",
    ),
    "Step": _object(
        {
            "index": _INT,
            "kind": {"enum": ["model", "tool"]},
            "name": _STR,
            "status": {"enum": ["ok", "error"]},
            "input": _OBJECT,
            "output": _OBJECT,
            "started_at": _NUM,
            "ended_at": _NUM,
        },
        ["index", "kind", "name", "status", "input", "output"],
    ),
    "AgentResult": _object(
        {
            "text": _STR,
            "messages": _array(_ref("ChatMessage"), description="The run's new messages."),
            "usage": _ref("Usage"),
            "steps": _array(_ref("Step")),
            "run_id": _STR,
            "output": {"description": "The structured answer, for agents with a schema."},
            "refused": {"type": ["string", "null"], "description": "A processor's refusal."},
            "degraded": {"type": "boolean", "description": "The group's degraded answer."},
        },
        ["text", "messages", "usage", "steps", "run_id", "output", "refused", "degraded"],
    ),
    "AgentList": _object(
        {
            "object": {"const": "list"},
            "data": _array(
                _object(
                    {
                        "name": _STR,
                        "description": _STR,
                        "model": {
                            "anyOf": [
                                _STR,
                                _array(
                                    _object(
                                        {"model": _STR, "retries": {"type": ["integer", "null"]}}
                                    )
                                ),
                            ]
                        },
                        "tools": _array(
                            _object(
                                {"name": _STR, "description": _STR, "parameters": _OBJECT},
                                ["name", "parameters"],
                            )
                        ),
                        "memory": _BOOL,
                        "max_steps": _INT,
                    },
                    ["name", "model", "tools"],
                )
            ),
        },
        ["object", "data"],
    ),
    "Thread": _object(
        {
            "id": _STR,
            "resource_id": _STR,
            "version": {"type": "integer", "description": "Turns committed so far."},
            "created_at": _NUM,
            "updated_at": _NUM,
            "metadata": _OBJECT,
        },
        ["id", "resource_id", "version"],
    ),
    "ThreadList": _object(
        {"object": {"const": "list"}, "data": _array(_ref("Thread"))}, ["object", "data"]
    ),
    "ThreadMessages": {
        "allOf": [
            _ref("Thread"),
            _object({"messages": _array(_ref("ChatMessage"))}, ["messages"]),
        ]
    },
    "Deleted": _object({"id": _STR, "deleted": {"const": True}}, ["id", "deleted"]),
    "Run": _object(
        {
            "id": _STR,
            "agent": _STR,
            "thread_id": {"type": ["string", "null"]},
            "resource_id": {"type": ["string", "null"]},
            "status": {"enum": ["running", "ok", "error"]},
            "started_at": _NUM,
            "ended_at": {"type": ["number", "null"]},
            "error": {"type": ["string", "null"]},
            "steps": _array(_ref("Step")),
        },
        ["id", "agent", "status", "steps"],
    ),
}

_AGENT_NAME: Schema = {
    "name": "name",
    "in": "path",
    "required": True,
    "description": "An agent of the config's `agents:` section.",
    "schema": {"type": "string", "minLength": 1},
}


def _query(name: str, schema: Schema, description: str, *, required: bool = False) -> Schema:
    return {
        "name": name,
        "in": "query",
        "required": required,
        "description": description,
        "schema": schema,
    }


_RESOURCE = _query("resource_id", _ID, "The resource that owns the thread.", required=True)
_THREAD_ID: Schema = {"name": "id", "in": "path", "required": True, "schema": _ID}
_RUN_HEADERS: Schema = {"x-bastion-run-id": _header("The run's id.", _STR)}
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


def _op(
    operation_id: str, summary: str, ok: Schema, errors: tuple[str, ...], **extra: object
) -> Schema:
    return {
        "operationId": operation_id,
        "summary": summary,
        **extra,
        "responses": {"200": ok, **_errors(*errors)},
    }


def _run_body() -> Schema:
    return {"required": True, "content": {"application/json": {"schema": _ref("RunRequest")}}}


def agent_paths() -> Schema:
    stream_event = _sse_event(
        _json_text(_OBJECT),
        "One agent event: `finish` carries the `AgentResult`, `error` an error's fields "
        "(`kind`, `message`, `code`, `status`, `run_id`).",
        event={"enum": _EVENT_TYPES},
    )
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
            **_errors("BadRequest", "Unauthorized", "Forbidden", "NotFound"),
        },
    }
    paths: Schema = {
        "/api/v1/agents": {
            "get": _op(
                "listAgents",
                "The agents this key may use, with their model and tools.",
                _body(_ref("AgentList"), "The agents."),
                # Never answered today (a key without agents gets an empty list); kept
                # so that every /api/v1 operation documents the refusal of a scope.
                ("Unauthorized", "Forbidden"),
            )
        },
        "/api/v1/agents/{name}/generate": {
            "post": _op(
                "generateAgent",
                "Run the agent to its answer." + _CONTEXT_NOTE,
                _body(_ref("AgentResult"), "The result.", headers=_RUN_HEADERS),
                _RUN_ERRORS,
                parameters=[_AGENT_NAME],
                requestBody=_run_body(),
            )
        },
        "/api/v1/agents/{name}/stream": {
            "post": _op(
                "streamAgent",
                "Run the agent; its events as server-sent events, ending with `finish` or "
                "`error`." + _CONTEXT_NOTE,
                _body(stream_event, "The events.", media="text/event-stream", headers=_RUN_HEADERS),
                _RUN_ERRORS,
                parameters=[_AGENT_NAME],
                requestBody=_run_body(),
            )
        },
        "/api/v1/agents/{name}/ws": {"get": socket},
        "/api/v1/threads": {
            "get": _op(
                "listThreads",
                "A resource's threads, most recently updated first.",
                _body(_ref("ThreadList"), "The threads."),
                ("BadRequest", "Unauthorized", "Forbidden", "UpstreamFailed"),
                parameters=[
                    _RESOURCE,
                    _query(
                        "limit", {"type": "integer", "minimum": 1, "maximum": 200}, "Page size."
                    ),
                    _query(
                        "offset", {"type": "integer", "minimum": 0, "maximum": 1_000_000}, "Skip."
                    ),
                ],
            )
        },
        "/api/v1/threads/{id}": {
            "get": _op(
                "getThread",
                "A thread and its messages; a thread of another resource is refused (403).",
                _body(_ref("ThreadMessages"), "The thread."),
                ("BadRequest", "Unauthorized", "Forbidden", "NotFound", "UpstreamFailed"),
                parameters=[
                    _THREAD_ID,
                    _RESOURCE,
                    _query(
                        "last", {"type": "integer", "minimum": 0, "maximum": 100_000}, "Newest N."
                    ),
                ],
            ),
            "delete": _op(
                "deleteThread",
                "Delete a thread and its messages; a thread of another resource is refused "
                "(403) and kept.",
                _body(_ref("Deleted"), "Deleted."),
                ("BadRequest", "Unauthorized", "Forbidden", "NotFound", "UpstreamFailed"),
                parameters=[_THREAD_ID, _RESOURCE],
            ),
        },
        "/api/v1/runs/{id}": {
            "get": _op(
                "getRun",
                "A run of an agent and its steps (model and tool calls, in order).",
                _body(_ref("Run"), "The run."),
                ("Unauthorized", "Forbidden", "NotFound", "UpstreamFailed"),
                parameters=[{"name": "id", "in": "path", "required": True, "schema": _STR}],
            )
        },
    }
    for path, item in paths.items():
        tag = "agents" if path.startswith("/api/v1/agents") else "memory"
        for operation in item.values():
            operation["tags"] = [tag]
    return paths
