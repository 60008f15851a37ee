"""What the server's APIs share: JSON bodies in and out, and the pieces of the OpenAPI
document (`openapi.py` assembles it).

Bodies off the hot path are typed: a request body is a pydantic model that both
validates it (`parse_body`, which answers in OpenAI's error shape naming the field) and
documents it; a response body is a `TypedDict` the handler builds as a plain dict (so
mypy holds the handler to it, at no cost per response) and the document is generated
from (`components`). The chat-completions body is the exception: it is parsed by hand
on the hot path (`server.openai.codec`), and its schema is written by hand.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Annotated, Any, NotRequired, TypeVar

import orjson
from aiohttp import web
from pydantic import BaseModel, Field, TypeAdapter, ValidationError, WithJsonSchema
from pydantic.json_schema import GenerateJsonSchema, JsonSchemaMode
from pydantic_core import CoreSchema, to_jsonable_python
from typing_extensions import TypedDict

from bastion.server.errors import ApiError, invalid

# --- JSON in and out ---------------------------------------------------------------

JSON = "application/json"


def _default(value: Any) -> Any:
    # Step records hold read-only mappings; an output schema may give pydantic models.
    if isinstance(value, Mapping):
        return dict(value)
    return to_jsonable_python(value, fallback=str)


def dumps(body: Any) -> bytes:
    """JSON bytes of a body that may hold mappings and pydantic models."""
    return orjson.dumps(body, default=_default)


def json_response(
    body: Any, status: int = 200, headers: Mapping[str, str] | None = None
) -> web.Response:
    return web.Response(body=dumps(body), status=status, content_type=JSON, headers=headers)


def load_json(raw: bytes) -> Any:
    """The request body as JSON; ApiError(400, `invalid_json`) if it is not."""
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise ApiError(400, f"the body is not valid JSON: {exc}", code="invalid_json") from None


# --- header values ---------------------------------------------------------------------
#
# aiohttp decodes header bytes as UTF-8 with `surrogateescape`: bytes that are not UTF-8
# become lone surrogates, which raise wherever the text is encoded again (JSON, a store,
# an upstream call, a span exporter). Values read from headers go through one of these.


def header_text(name: str, value: str) -> str:
    """`value` of the header `name`, if it is valid UTF-8; ApiError(400) naming the header
    otherwise (the value is not quoted: it may be anything)."""
    if value.isascii():  # the common case, and valid by construction
        return value
    try:
        value.encode()
    except UnicodeEncodeError:
        raise ApiError(
            400, f"the header {name} is not valid UTF-8", param=name, code="invalid_header"
        ) from None
    return value


def lossy_header(value: str) -> str:
    """`value` with each byte that is not UTF-8 as U+FFFD: for what only describes a
    request (a log line, a span attribute) and must not refuse it."""
    if value.isascii():
        return value
    return value.encode(errors="surrogateescape").decode(errors="replace")


@dataclass(frozen=True, slots=True)
class Refusal:
    """What a refused field is told, in place of pydantic's wording, as metadata of the
    field: `Annotated[str | None, Refusal("must be a non-empty string")]`."""

    text: str


M = TypeVar("M", bound=BaseModel)


def parse_body(model: type[M], body: Any, *, noun: str = "the body") -> M:
    """`body` validated by `model`; ApiError(400) naming the first bad field otherwise
    (an unknown field first, then the model's fields in order)."""
    if not isinstance(body, dict):
        raise ApiError(400, "the body must be a JSON object", code="invalid_json")
    try:
        return model.model_validate(body)
    except ValidationError as exc:
        errors = exc.errors(include_url=False, include_input=False)
        first = next((e for e in errors if e["type"] == "extra_forbidden"), errors[0])
    field = str(first["loc"][0])
    param = field + "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in first["loc"][1:])
    if first["type"] == "extra_forbidden":
        known = ", ".join(sorted(model.model_fields))
        raise invalid(param, f"unknown field; {noun} has {known}")
    info = model.model_fields[field]
    said = next((m.text for m in info.metadata if isinstance(m, Refusal)), None)
    raise invalid(param, said or first["msg"])


# --- the OpenAPI document --------------------------------------------------------------

Schema = dict[str, Any]

STR: Schema = {"type": "string"}
INT: Schema = {"type": "integer"}
NUM: Schema = {"type": "number"}
BOOL: Schema = {"type": "boolean"}
OBJECT: Schema = {"type": "object"}

_COMPONENTS = "#/components/schemas/"
_MARK = "x-bastion-component"


def ref(name: str) -> Schema:
    return {"$ref": _COMPONENTS + name}


def component(name: str) -> WithJsonSchema:
    """For a typed field: "this is the hand-written component `name`" (a chat message,
    the usage), turned into a `$ref` by `components`."""
    return WithJsonSchema({_MARK: name})


class _Untitled(GenerateJsonSchema):
    """Titles are the names of fields: the document has them already."""

    def field_title_should_be_set(self, schema: CoreSchema) -> bool:
        return False


def components(types: Iterable[type[Any]]) -> Schema:
    """The component schemas of `types` (models and TypedDicts), by class name. A type
    that only one of them uses, once, is written in place rather than as a component."""
    adapters: list[tuple[str, JsonSchemaMode, TypeAdapter[Any]]] = [
        (t.__name__, "validation", TypeAdapter(t)) for t in types
    ]
    _, top = TypeAdapter.json_schemas(
        adapters, ref_template=_COMPONENTS + "{model}", schema_generator=_Untitled
    )
    defs: Schema = _restore_refs(top.get("$defs", {}))
    named = {name for name, _, _ in adapters}
    uses: dict[str, int] = {}
    _count_refs(defs, uses)
    inline = {name for name in defs if name not in named and uses.get(name) == 1}
    return {
        name: _inlined(schema, defs, inline) for name, schema in defs.items() if name not in inline
    }


def _restore_refs(node: Any) -> Any:
    """The marks of `component` as `$ref`s, and descriptions on one line (a docstring's
    line breaks are the source's wrapping, not the text's)."""
    if isinstance(node, dict):
        if _MARK in node:
            return ref(node[_MARK])
        return {
            key: " ".join(value.split())
            if key == "description" and isinstance(value, str)
            else _restore_refs(value)
            for key, value in node.items()
        }
    if isinstance(node, list):
        return [_restore_refs(item) for item in node]
    return node


def _count_refs(node: Any, uses: dict[str, int]) -> None:
    if isinstance(node, dict):
        target = node.get("$ref")
        if isinstance(target, str) and target.startswith(_COMPONENTS):
            name = target[len(_COMPONENTS) :]
            uses[name] = uses.get(name, 0) + 1
        for value in node.values():
            _count_refs(value, uses)
    elif isinstance(node, list):
        for item in node:
            _count_refs(item, uses)


def _inlined(node: Any, defs: Schema, inline: set[str]) -> Any:
    if isinstance(node, dict):
        target = node.get("$ref")
        if isinstance(target, str) and target[len(_COMPONENTS) :] in inline:
            return _inlined(defs[target[len(_COMPONENTS) :]], defs, inline)
        return {key: _inlined(value, defs, inline) for key, value in node.items()}
    if isinstance(node, list):
        return [_inlined(item, defs, inline) for item in node]
    return node


def body_of(
    schema: Schema, description: str, *, media: str = JSON, headers: Schema | None = None
) -> Schema:
    """A response (or a request body) of one media type."""
    out: Schema = {"description": description, "content": {media: {"schema": schema}}}
    if headers:
        out["headers"] = headers
    return out


def header(description: str, schema: Schema) -> Schema:
    return {"description": description, "schema": schema}


def query(name: str, schema: Schema, description: str, *, required: bool = False) -> Schema:
    return {
        "name": name,
        "in": "query",
        "required": required,
        "description": description,
        "schema": schema,
    }


def sse_event(data: Schema, description: str, **fields: Schema) -> Schema:
    """One server-sent event, as OpenAPI 3.2's `itemSchema` has it and schemathesis
    reads a 3.1 event-stream `schema`: `data` is the text after `data: `."""
    return {
        "type": "object",
        "properties": {**fields, "data": data},
        "required": ["data"],
        "description": description,
    }


def json_text(schema: Schema) -> Schema:
    """A string holding JSON of `schema` (an event's `data`)."""
    return {"type": "string", "contentMediaType": JSON, "contentSchema": schema}


# --- errors --------------------------------------------------------------------------


class FailedAttempt(TypedDict):
    """What one attempt met. An error in a stream names only the endpoint, the kind and
    the status."""

    endpoint: str
    model: NotRequired[str]
    kind: str | None
    status: int | None
    duration_ms: NotRequired[float]


class ErrorFields(TypedDict):
    message: str
    type: str
    param: Annotated[
        str | None, Field(description="The offending field, as a path: `messages[0].role`.")
    ]
    code: str | None
    attempts: NotRequired[
        Annotated[
            list[FailedAttempt],
            Field(description="When every target failed: what each attempt met."),
        ]
    ]
    line: NotRequired[
        Annotated[int | None, Field(description="For an invalid config: the line at fault.")]
    ]
    run_id: NotRequired[
        Annotated[str, Field(description="The agent run that failed: its steps are kept.")]
    ]


class Error(TypedDict):
    """OpenAI's error shape, so the SDKs raise their typed exceptions."""

    error: ErrorFields


_RETRY_AFTER = {"Retry-After": header("Seconds to wait before trying again.", INT)}

# name: (status codes, description, headers)
ERRORS: dict[str, tuple[tuple[str, ...], str, Schema]] = {
    "BadRequest": (("400",), "Malformed input; `error.param` names the field.", {}),
    "Unauthorized": (
        ("401",),
        "No API key, or an unknown one.",
        {"WWW-Authenticate": header("The scheme to use.", STR)},
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


def error_responses(*names: str) -> Schema:
    """The responses of the named `ERRORS`, by status code."""
    return {
        code: {"$ref": f"#/components/responses/{name}"}
        for name in names
        for code in ERRORS[name][0]
    }


def operation(
    operation_id: str, summary: str, ok: Schema, errors: Sequence[str], **extra: Any
) -> Schema:
    """An operation answering `ok` with 200, or one of the named `errors`."""
    return {
        "operationId": operation_id,
        "summary": summary,
        **extra,
        "responses": {"200": ok, **error_responses(*errors)},
    }
