"""The OpenAPI operations and schemas of the OpenAI-compatible API (`/v1/*`).

Hand-written rather than derived: the chat body is parsed by hand on the hot path
(`codec`), so there is no model to derive it from, and a contract written down on its
own is one the tests can hold the code to (the gateway suite runs schemathesis against
the document). It describes what clients may send and what they get back; where the
server accepts more (unknown chat fields go upstream as they came), the schema says so
rather than listing OpenAI's every field.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from bastion.server.common import (
    BOOL,
    ERRORS,
    INT,
    JSON,
    NUM,
    STR,
    Schema,
    body_of,
    header,
    json_text,
    operation,
    ref,
    sse_event,
)


def _object(properties: Schema, required: Sequence[str] = (), **extra: Any) -> Schema:
    out: Schema = {"type": "object", "properties": properties, **extra}
    if required:
        out["required"] = list(required)
    return out


def _nullable(schema: Schema) -> Schema:
    return {"anyOf": [schema, {"type": "null"}]}


def _array(items: Schema, **extra: Any) -> Schema:
    return {"type": "array", "items": items, **extra}


_FINGERPRINT: Schema = {
    "type": "string",
    "description": "The upstream's, when it gave one (OpenAI-compatible upstreams).",
}
_LOGPROBS: Schema = {
    "anyOf": [{"type": "object"}, {"type": "null"}],
    "description": "The upstream's own `logprobs` (when asked with `logprobs: true`); in "
    "a chunk, those of its piece of text.",
}


def _message(roles: list[str], description: str, *, tool: bool = False) -> Schema:
    """A message whose content is required: every role but assistant."""
    properties: Schema = {"role": {"enum": roles}, "content": ref("Content")}
    properties.update({"tool_call_id": STR} if tool else {"name": STR})
    required = ["role", "content", "tool_call_id"] if tool else ["role", "content"]
    return _object(properties, required, description=description)


_FUNCTION_NAME: Schema = {"type": "string", "minLength": 1}
_USAGE_FIELDS = ("prompt_tokens", "completion_tokens", "total_tokens")

SCHEMAS: Schema = {
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
                        ref("AssistantMessage"),
                        _message(["tool"], "A tool's result.", tool=True),
                    ]
                },
                minItems=1,
            ),
            "stream": {"type": "boolean", "default": False},
            "stream_options": _nullable(_object({"include_usage": BOOL})),
            "tools": _nullable(_array(ref("Tool"))),
            "tool_choice": _nullable(
                {
                    "anyOf": [
                        {"enum": ["none", "auto", "required"]},
                        _object(
                            {
                                "type": {"const": "function"},
                                "function": _object({"name": STR}, ["name"]),
                            },
                            ["type", "function"],
                        ),
                    ]
                }
            ),
            "temperature": _nullable({"type": "number", "minimum": 0, "maximum": 2}),
            "max_tokens": _nullable({"type": "integer", "minimum": 1}),
            "max_completion_tokens": _nullable({"type": "integer", "minimum": 1}),
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
        "description": (
            "A string, or an array of content parts: text parts are joined in order; "
            "image, audio and file parts go to an OpenAI-compatible upstream as sent, "
            "and to an Anthropic one as its image and document blocks (text, images "
            "and PDFs only)."
        ),
        "anyOf": [
            STR,
            _array(
                {
                    "anyOf": [
                        ref("TextPart"),
                        ref("ImagePart"),
                        ref("AudioPart"),
                        ref("FilePart"),
                    ]
                }
            ),
        ],
    },
    "TextPart": _object(
        {"type": {"const": "text"}, "text": STR}, ["type", "text"], description="A text part."
    ),
    "ImagePart": _object(
        {
            "type": {"const": "image_url"},
            "image_url": _object(
                {
                    "url": {"type": "string", "pattern": "^(https?://|data:image/.*;base64,)"},
                    "detail": {"enum": ["auto", "low", "high"]},
                },
                ["url"],
            ),
        },
        ["type", "image_url"],
        description="An image by http(s) URL or as a base64 `data:image/...` URL.",
    ),
    "AudioPart": _object(
        {
            "type": {"const": "input_audio"},
            "input_audio": _object(
                {"data": {"type": "string", "minLength": 1}, "format": {"enum": ["wav", "mp3"]}},
                ["data", "format"],
            ),
        },
        ["type", "input_audio"],
        description="Audio, base64 in `data`.",
    ),
    "FilePart": _object(
        {
            "type": {"const": "file"},
            "file": _object(
                {
                    "file_data": {"type": "string", "minLength": 1},
                    "file_id": {"type": "string", "minLength": 1},
                    "filename": {"type": "string", "minLength": 1},
                },
                anyOf=[{"required": ["file_data"]}, {"required": ["file_id"]}],
            ),
        },
        ["type", "file"],
        description="A file: its bytes as a `data:` URL in `file_data`, or a `file_id`.",
    ),
    "AssistantMessage": _object(
        {
            "role": {"const": "assistant"},
            "content": _nullable(ref("Content")),
            "name": STR,
            "tool_calls": _nullable(_array(ref("ToolCall"))),
        },
        ["role"],
        description="An answer; content may be null when it only calls tools.",
    ),
    "ToolCall": _object(
        {
            "id": STR,
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
                    "description": STR,
                    "parameters": {"type": "object", "description": "A JSON schema."},
                },
                ["name"],
            ),
        },
        ["type", "function"],
    ),
    "ChatCompletion": _object(
        {
            "id": STR,
            "object": {"const": "chat.completion"},
            "created": INT,
            "model": {"type": "string", "description": "The upstream model that answered."},
            "system_fingerprint": _FINGERPRINT,
            "choices": _array(
                _object(
                    {
                        "index": INT,
                        "message": ref("AssistantMessage"),
                        "logprobs": _LOGPROBS,
                        "finish_reason": STR,
                    },
                    ["index", "message", "finish_reason"],
                )
            ),
            "usage": ref("Usage"),
        },
        ["id", "object", "created", "model", "choices", "usage"],
        description="An OpenAI-compatible upstream's answer as it gave it (its id, "
        "model, `system_fingerprint`, `logprobs`, usage details).",
    ),
    "ChatCompletionChunk": _object(
        {
            "id": STR,
            "object": {"const": "chat.completion.chunk"},
            "created": INT,
            "model": STR,
            "system_fingerprint": _FINGERPRINT,
            "choices": _array(
                _object(
                    {
                        "index": INT,
                        "logprobs": _LOGPROBS,
                        "delta": _object(
                            {
                                "role": {"const": "assistant"},
                                "content": {"type": ["string", "null"]},
                                "tool_calls": _array(
                                    _object(
                                        {
                                            "index": INT,
                                            "id": STR,
                                            "type": {"const": "function"},
                                            "function": _object({"name": STR, "arguments": STR}),
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
            "usage": ref("Usage"),
        },
        ["id", "object", "created", "model", "choices"],
        description="With `stream_options.include_usage`, a last chunk has no choices "
        "and the usage.",
    ),
    "Usage": _object(
        {name: {"type": "integer", "minimum": 0} for name in _USAGE_FIELDS}, _USAGE_FIELDS
    ),
    "Model": _object(
        {"id": STR, "object": {"const": "model"}, "created": INT, "owned_by": STR},
        ["id", "object", "created", "owned_by"],
    ),
    "ModelList": _object(
        {"object": {"const": "list"}, "data": _array(ref("Model"))},
        ["object", "data"],
    ),
}

# One message of a chat body: what the agents' run bodies and answers hold, too.
SCHEMAS["ChatMessage"] = SCHEMAS["ChatRequest"]["properties"]["messages"]["items"]


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


_STREAM_EVENT = sse_event(
    {
        "anyOf": [
            {"const": "[DONE]"},
            json_text({"anyOf": [ref("ChatCompletionChunk"), ref("Error")]}),
        ]
    },
    "One `chat.completion.chunk` per event, then `[DONE]`. A failure after the first "
    "chunk that no other endpoint could continue arrives in-band as an `Error`.",
)


_ANSWER_HEADERS: Schema = {
    "x-bastion-endpoint": header("The endpoint that served the answer.", STR),
    "x-bastion-attempts": header("How many upstream attempts it took.", INT),
    "x-bastion-overhead-ms": header("The gateway's own time, upstream time excluded.", NUM),
    "x-bastion-degraded": header("`true` for the group's degraded reply.", STR),
}


def paths() -> Schema:
    """The operations under `/v1/`."""
    chat = operation(
        "createChatCompletion",
        "A chat completion, streamed or not, failing over across endpoints.",
        {
            "description": "The answer (JSON), or its stream (server-sent events).",
            "headers": _ANSWER_HEADERS,
            "content": {
                JSON: {"schema": ref("ChatCompletion")},
                "text/event-stream": {"schema": _STREAM_EVENT},
            },
        },
        tuple(ERRORS),
        requestBody={
            "required": True,
            "content": {JSON: {"schema": ref("ChatRequest"), "examples": _CHAT_EXAMPLES}},
        },
    )
    models = operation(
        "listModels",
        "The model groups and endpoints this key may use.",
        body_of(ref("ModelList"), "The models."),
        ("Unauthorized",),
    )
    model = operation(
        "retrieveModel",
        "One model group or endpoint; 404 if there is none of that id or the key may not use it.",
        body_of(ref("Model"), "The model."),
        ("Unauthorized", "NotFound"),
        parameters=[
            {
                "name": "model",
                "in": "path",
                "required": True,
                "description": "A model group or endpoint id from `GET /v1/models`.",
                "schema": STR,
            }
        ],
    )
    out: Schema = {
        "/v1/chat/completions": {"post": chat},
        "/v1/models": {"get": models},
        "/v1/models/{model}": {"get": model},
    }
    for item in out.values():
        for op in item.values():
            op["tags"] = ["openai"]
    return out
