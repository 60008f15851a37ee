"""The schemas and responses of the OpenAPI document (see `openapi.py`).

Hand-written rather than derived from the handlers: the chat body is parsed by hand on
the hot path (`openai_codec`), so there is no model to derive it from, and a contract
written down on its own is one the tests can hold the code to (the gateway suite runs
schemathesis against this document). It describes what clients may send and what they
get back; where the server accepts more (unknown chat fields go upstream as they
came), the schema says so rather than listing OpenAI's every field.

Built once per app; every caller gets the same bytes.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

Schema = dict[str, Any]

_JSON = "application/json"
_STR: Schema = {"type": "string"}
_INT: Schema = {"type": "integer"}
_NUM: Schema = {"type": "number"}
_BOOL: Schema = {"type": "boolean"}


def _ref(name: str) -> Schema:
    return {"$ref": f"#/components/schemas/{name}"}


def _object(properties: Schema, required: Sequence[str] = (), **extra: Any) -> Schema:
    out: Schema = {"type": "object", "properties": properties, **extra}
    if required:
        out["required"] = list(required)
    return out


def _nullable(schema: Schema) -> Schema:
    return {"anyOf": [schema, {"type": "null"}]}


def _array(items: Schema, **extra: Any) -> Schema:
    return {"type": "array", "items": items, **extra}


def _body(
    schema: Schema, description: str, *, media: str = _JSON, headers: Schema | None = None
) -> Schema:
    """A response (or a request body) of one media type."""
    out: Schema = {"description": description, "content": {media: {"schema": schema}}}
    if headers:
        out["headers"] = headers
    return out


# --- chat completions ----------------------------------------------------------------


def _message(roles: list[str], description: str, *, tool: bool = False) -> Schema:
    """A message whose content is required: every role but assistant."""
    properties: Schema = {"role": {"enum": roles}, "content": _ref("Content")}
    properties.update({"tool_call_id": _STR} if tool else {"name": _STR})
    required = ["role", "content", "tool_call_id"] if tool else ["role", "content"]
    return _object(properties, required, description=description)


_FUNCTION_NAME: Schema = {"type": "string", "minLength": 1}
_USAGE_FIELDS = ("prompt_tokens", "completion_tokens", "total_tokens")

_CHAT_SCHEMAS: Schema = {
    "ChatRequest": _object(
        {
            "model": {
                "type": "string",
                "minLength": 1,
                "description": "A model group or endpoint id from `GET /v1/models`.",
            },
            "messages": _array(
                {
                    "oneOf": [
                        _message(["system", "developer"], "Instructions (developer = system)."),
                        _message(["user"], "The user's turn."),
                        _ref("AssistantMessage"),
                        _message(["tool"], "A tool's result.", tool=True),
                    ]
                },
                minItems=1,
            ),
            "stream": {"type": "boolean", "default": False},
            "stream_options": _nullable(_object({"include_usage": _BOOL})),
            "tools": _nullable(_array(_ref("Tool"))),
            "tool_choice": _nullable(
                {
                    "anyOf": [
                        {"enum": ["none", "auto", "required"]},
                        _object(
                            {
                                "type": {"const": "function"},
                                "function": _object({"name": _STR}, ["name"]),
                            },
                            ["type", "function"],
                        ),
                    ]
                }
            ),
            "temperature": _nullable({"type": "number", "minimum": 0, "maximum": 2}),
            "max_tokens": _nullable({"type": "integer", "minimum": 1}),
        },
        ["model", "messages"],
        additionalProperties=True,
        description=(
            "OpenAI's chat-completions body. The fields below are validated (an error "
            "names the first bad one in `error.param`); any other field goes to the "
            "upstream untouched."
        ),
    ),
    "Content": {
        "description": "A string, or an array of text parts (joined in order).",
        "anyOf": [_STR, _array(_ref("TextPart"))],
    },
    "TextPart": _object(
        {"type": {"const": "text"}, "text": _STR},
        ["type", "text"],
        description="A text part. Other part types (images, audio) are refused.",
    ),
    "AssistantMessage": _object(
        {
            "role": {"const": "assistant"},
            "content": _nullable(_ref("Content")),
            "name": _STR,
            "tool_calls": _nullable(_array(_ref("ToolCall"))),
        },
        ["role"],
        description="An answer; content may be null when it only calls tools.",
    ),
    "ToolCall": _object(
        {
            "id": _STR,
            "type": {"const": "function"},
            "function": _object(
                {"name": _FUNCTION_NAME, "arguments": {"type": "string", "description": "JSON."}},
                ["name"],
            ),
        },
        ["id", "function"],
    ),
    "Tool": _object(
        {
            "type": {"const": "function"},
            "function": _object(
                {
                    "name": _FUNCTION_NAME,
                    "description": _STR,
                    "parameters": {"type": "object", "description": "A JSON schema."},
                },
                ["name"],
            ),
        },
        ["type", "function"],
    ),
    "ChatCompletion": _object(
        {
            "id": _STR,
            "object": {"const": "chat.completion"},
            "created": _INT,
            "model": {"type": "string", "description": "The upstream model that answered."},
            "choices": _array(
                _object(
                    {"index": _INT, "message": _ref("AssistantMessage"), "finish_reason": _STR},
                    ["index", "message", "finish_reason"],
                )
            ),
            "usage": _ref("Usage"),
        },
        ["id", "object", "created", "model", "choices", "usage"],
    ),
    "ChatCompletionChunk": _object(
        {
            "id": _STR,
            "object": {"const": "chat.completion.chunk"},
            "created": _INT,
            "model": _STR,
            "choices": _array(
                _object(
                    {
                        "index": _INT,
                        "delta": _object(
                            {
                                "role": {"const": "assistant"},
                                "content": {"type": ["string", "null"]},
                                "tool_calls": _array(
                                    _object(
                                        {
                                            "index": _INT,
                                            "id": _STR,
                                            "type": {"const": "function"},
                                            "function": _object({"name": _STR, "arguments": _STR}),
                                        },
                                        ["index"],
                                    )
                                ),
                            }
                        ),
                        "finish_reason": {"type": ["string", "null"]},
                    },
                    ["index", "delta"],
                )
            ),
            "usage": _ref("Usage"),
        },
        ["id", "object", "created", "model", "choices"],
        description="With `stream_options.include_usage`, a last chunk has no choices "
        "and the usage.",
    ),
    "Usage": _object(
        {name: {"type": "integer", "minimum": 0} for name in _USAGE_FIELDS}, _USAGE_FIELDS
    ),
    "ModelList": _object(
        {
            "object": {"const": "list"},
            "data": _array(
                _object(
                    {"id": _STR, "object": {"const": "model"}, "created": _INT, "owned_by": _STR},
                    ["id", "object", "created", "owned_by"],
                )
            ),
        },
        ["object", "data"],
    ),
}


_QUESTION = [
    {"role": "system", "content": "Answer in one line."},
    {"role": "user", "content": "What does a circuit breaker do?"},
]
_CHAT_EXAMPLES: Schema = {
    "answer": {"summary": "An answer", "value": {"model": "chat", "messages": _QUESTION}},
    "stream": {
        "summary": "A streamed answer, with the usage at the end",
        "value": {
            "model": "chat",
            "messages": _QUESTION,
            "stream": True,
            "stream_options": {"include_usage": True},
        },
    },
}


def _sse_event(data: Schema, description: str, **fields: Schema) -> Schema:
    """One server-sent event, as OpenAPI 3.2's `itemSchema` has it and schemathesis
    reads a 3.1 event-stream `schema`: `data` is the text after `data: `."""
    return _object({**fields, "data": data}, ["data"], description=description)


def _json_text(schema: Schema) -> Schema:
    return {"type": "string", "contentMediaType": _JSON, "contentSchema": schema}


_STREAM_EVENT = _sse_event(
    {
        "anyOf": [
            {"const": "[DONE]"},
            _json_text({"anyOf": [_ref("ChatCompletionChunk"), _ref("Error")]}),
        ]
    },
    "One `chat.completion.chunk` per event, then `[DONE]`. A failure after the first "
    "chunk that no other endpoint could continue arrives in-band as an `Error`.",
)


def _header(description: str, schema: Schema) -> Schema:
    return {"description": description, "schema": schema}


_ANSWER_HEADERS: Schema = {
    "x-bastion-endpoint": _header("The endpoint that served the answer.", _STR),
    "x-bastion-attempts": _header("How many upstream attempts it took.", _INT),
    "x-bastion-overhead-ms": _header("The gateway's own time, upstream time excluded.", _NUM),
    "x-bastion-degraded": _header("`true` for the group's degraded reply.", _STR),
}

# --- errors --------------------------------------------------------------------------

_ERROR: Schema = _object(
    {
        "error": _object(
            {
                "message": _STR,
                "type": _STR,
                "param": {
                    "type": ["string", "null"],
                    "description": "The offending field, as a path: `messages[0].role`.",
                },
                "code": {"type": ["string", "null"]},
                "attempts": _array(
                    _object(
                        {
                            "endpoint": _STR,
                            "model": _STR,
                            "kind": {"type": ["string", "null"]},
                            "status": {"type": ["integer", "null"]},
                            "duration_ms": _NUM,
                        }
                    ),
                    description="When every target failed: what each attempt met.",
                ),
                "line": {
                    "type": ["integer", "null"],
                    "description": "For an invalid config: the line at fault.",
                },
            },
            ["message", "type", "param", "code"],
        )
    },
    ["error"],
    description="OpenAI's error shape, so the SDKs raise their typed exceptions.",
)

_RETRY_AFTER = {"Retry-After": _header("Seconds to wait before trying again.", _INT)}

# name: (status codes, description, headers)
_ERRORS: dict[str, tuple[tuple[str, ...], str, Schema]] = {
    "BadRequest": (("400",), "Malformed input; `error.param` names the field.", {}),
    "Unauthorized": (
        ("401",),
        "No API key, or an unknown one.",
        {"WWW-Authenticate": _header("The scheme to use.", _STR)},
    ),
    "Forbidden": (("403",), "The key may not use this model or operation.", {}),
    "NotFound": (("404",), "No such model, endpoint, agent, thread, run or path.", {}),
    "Conflict": (("409",), "The thread is busy or changed, or the run id is taken.", {}),
    "PayloadTooLarge": (("413",), "The body is larger than `server.max_body`.", {}),
    "RateLimited": (("429",), "A rate limit was reached.", _RETRY_AFTER),
    "UpstreamFailed": (
        ("502", "503", "504"),
        "Every target failed or none is available (`error.attempts` lists the attempts), "
        "an agent hit a bound (`error.code`: step_limit, ...), or the memory store is away.",
        _RETRY_AFTER,
    ),
}


def _errors(*names: str) -> Schema:
    return {
        code: {"$ref": f"#/components/responses/{name}"}
        for name in names
        for code in _ERRORS[name][0]
    }


# --- the control plane ---------------------------------------------------------------
