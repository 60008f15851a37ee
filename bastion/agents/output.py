"""Structured output: the final answer parsed and validated against a schema.

`output=` is a pydantic model class (or any type pydantic can validate, such as
`list[int]`) or a JSON-schema dict. The model is told the schema in the system
prompt and asked for bare JSON; the answer is read leniently (a ```json fence or
prose around one JSON object is tolerated) and validated strictly. The repair
message built here is what the agent sends back when validation fails.

JSON-schema dicts are checked by a small validator (no new dependency) that covers
what structured-output schemas use: type, properties, required,
additionalProperties, items, enum, const, anyOf/oneOf/allOf, minimum/maximum,
minLength/maxLength, minItems/maxItems and local `$ref`s. Other keywords are ignored.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import orjson
from pydantic import TypeAdapter, ValidationError

from bastion.agents.errors import describe_validation_error
from bastion.types import Message

_JSON_TYPES: Mapping[str, type | tuple[type, ...]] = {
    "object": dict,
    "array": list,
    "string": str,
    "integer": int,
    "number": (int, float),
    "boolean": bool,
    "null": type(None),
}


class OutputError(ValueError):
    """The answer is not valid; the message says what, field by field."""


class OutputSpec:
    """How to ask for, read and validate a structured answer."""

    __slots__ = ("_adapter", "instructions", "schema")

    def __init__(self, output: type[Any] | Mapping[str, Any]) -> None:
        if isinstance(output, Mapping):
            self._adapter: TypeAdapter[Any] | None = None
            self.schema: Mapping[str, Any] = dict(output)
        else:
            self._adapter = TypeAdapter(output)
            self.schema = self._adapter.json_schema()
        self.instructions = (
            "Give your final answer as a single JSON value that matches this JSON schema, "
            "with no other text and no code fence:\n" + orjson.dumps(self.schema).decode()
        )

    def parse(self, text: str) -> Any:
        """The validated value; `OutputError` naming each problem otherwise."""
        raw = extract_json(text)
        if self._adapter is not None:
            try:
                return self._adapter.validate_json(raw)
            except ValidationError as exc:
                raise OutputError(describe_validation_error(exc)) from None
        try:
            value = orjson.loads(raw)
        except orjson.JSONDecodeError as exc:
            raise OutputError(f"not valid JSON ({exc})") from None
        problems = validate_schema(value, self.schema)
        if problems:
            raise OutputError("; ".join(problems[:5]))
        return value

    @staticmethod
    def repair_request(error: OutputError) -> Message:
        return Message(
            role="user",
            content=(
                f"Your answer did not match the required JSON schema: {error}. "
                "Reply with only the corrected JSON."
            ),
        )


def extract_json(text: str) -> str:
    """The JSON part of an answer: the text itself, a fenced block, or the span from
    the first brace or bracket to the last one."""
    stripped = text.strip()
    if stripped.startswith("```"):
        body = stripped.split("\n", 1)[1] if "\n" in stripped else ""
        end = body.rfind("```")
        return (body[:end] if end >= 0 else body).strip()
    if stripped[:1] in ("{", "[") or not stripped:
        return stripped
    starts = [i for i in (stripped.find("{"), stripped.find("[")) if i >= 0]
    if not starts:
        return stripped
    start = min(starts)
    end = max(stripped.rfind("}"), stripped.rfind("]"))
    return stripped[start : end + 1] if end > start else stripped


def validate_schema(
    value: Any, schema: Mapping[str, Any], root: Mapping[str, Any] | None = None, path: str = "$"
) -> list[str]:
    """Problems with `value` under `schema`, each prefixed with its JSON path."""
    root = root if root is not None else schema
    ref = schema.get("$ref")
    if isinstance(ref, str):
        schema = _resolve(ref, root)
    problems: list[str] = []
    kind = schema.get("type")
    if kind is not None:
        kinds = [kind] if isinstance(kind, str) else list(kind)
        if not any(_is_type(value, k) for k in kinds):
            return [f"{path}: expected {' or '.join(kinds)}, got {_type_name(value)}"]
    if "enum" in schema and value not in schema["enum"]:
        problems.append(f"{path}: must be one of {list(schema['enum'])!r}")
    if "const" in schema and value != schema["const"]:
        problems.append(f"{path}: must be {schema['const']!r}")
    for key in ("anyOf", "oneOf"):
        options = schema.get(key)
        if options and all(validate_schema(value, o, root, path) for o in options):
            problems.append(f"{path}: matches none of the allowed shapes")
    for sub in schema.get("allOf", ()):
        problems += validate_schema(value, sub, root, path)
    if isinstance(value, dict):
        problems += _object(value, schema, root, path)
    elif isinstance(value, list):
        problems += _array(value, schema, root, path)
    elif isinstance(value, str):
        problems += _bounds(len(value), schema, "minLength", "maxLength", path, "characters")
    elif isinstance(value, int | float) and not isinstance(value, bool):
        if "minimum" in schema and value < schema["minimum"]:
            problems.append(f"{path}: must be ≥ {schema['minimum']}")
        if "maximum" in schema and value > schema["maximum"]:
            problems.append(f"{path}: must be ≤ {schema['maximum']}")
    return problems


def _object(
    value: dict[str, Any], schema: Mapping[str, Any], root: Mapping[str, Any], path: str
) -> list[str]:
    problems = [
        f"{path}.{name}: required field missing"
        for name in schema.get("required", ())
        if name not in value
    ]
    properties: Mapping[str, Any] = schema.get("properties", {})
    extra = schema.get("additionalProperties", True)
    for name, item in value.items():
        sub = properties.get(name)
        if sub is not None:
            problems += validate_schema(item, sub, root, f"{path}.{name}")
        elif extra is False:
            problems.append(f"{path}.{name}: unexpected field")
        elif isinstance(extra, Mapping):
            problems += validate_schema(item, extra, root, f"{path}.{name}")
    return problems


def _array(
    value: list[Any], schema: Mapping[str, Any], root: Mapping[str, Any], path: str
) -> list[str]:
    problems = _bounds(len(value), schema, "minItems", "maxItems", path, "items")
    items = schema.get("items")
    if isinstance(items, Mapping):
        for i, item in enumerate(value):
            problems += validate_schema(item, items, root, f"{path}[{i}]")
    return problems


def _bounds(
    size: int, schema: Mapping[str, Any], low: str, high: str, path: str, unit: str
) -> list[str]:
    if low in schema and size < schema[low]:
        return [f"{path}: needs at least {schema[low]} {unit}"]
    if high in schema and size > schema[high]:
        return [f"{path}: allows at most {schema[high]} {unit}"]
    return []


def _resolve(ref: str, root: Mapping[str, Any]) -> Mapping[str, Any]:
    if not ref.startswith("#/"):
        raise OutputError(f"only local $refs are supported, got {ref!r}")
    node: Any = root
    for part in ref[2:].split("/"):
        node = node[part.replace("~1", "/").replace("~0", "~")]
    if not isinstance(node, Mapping):
        raise OutputError(f"$ref {ref!r} does not name a schema")
    return node


def _is_type(value: Any, kind: str) -> bool:
    expected = _JSON_TYPES.get(kind)
    if expected is None:
        return True
    if isinstance(value, bool) and kind in ("integer", "number"):
        return False
    if kind == "integer" and isinstance(value, float):
        return value.is_integer()
    return isinstance(value, expected)


def _type_name(value: Any) -> str:
    for name, expected in _JSON_TYPES.items():
        if name != "number" and isinstance(value, expected):
            return "boolean" if isinstance(value, bool) else name
    return "number" if isinstance(value, float) else type(value).__name__
