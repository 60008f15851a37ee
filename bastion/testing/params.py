"""Reading fault parameters from JSON, with errors that name the field."""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from typing import Any

ToolCallSpec = tuple[str, str]
"""A tool call to answer with: (function name, arguments as JSON text)."""


class FaultError(ValueError):
    """Invalid fault or control input; `field` names what was wrong."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message


# One reader per parameter name: parameters mean the same thing in every fault, so the
# table stays short and every message names the field.


def _number(field: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise FaultError(field, f"expected a number, got {value!r}")
    return float(value)


def _integer(field: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise FaultError(field, f"expected an integer, got {value!r}")
    return value


def _string(field: str, value: Any) -> str:
    if not isinstance(value, str):
        raise FaultError(field, f"expected a string, got {value!r}")
    return value


def _flag(field: str, value: Any) -> bool:
    if not isinstance(value, bool):
        raise FaultError(field, f"expected true or false, got {value!r}")
    return value


def _optional(read: Callable[[str, Any], Any]) -> Callable[[str, Any], Any]:
    return lambda field, value: None if value is None else read(field, value)


def _body(field: str, value: Any) -> str | None:
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, Mapping | list):
        return json.dumps(value)
    raise FaultError(field, f"expected a string or JSON object, got {value!r}")


def _tool_calls(field: str, value: Any) -> tuple[ToolCallSpec, ...] | None:
    if value is None:
        return None
    if not isinstance(value, list | tuple):
        raise FaultError(field, "expected a list of [name, arguments] pairs")
    calls: list[ToolCallSpec] = []
    for i, call in enumerate(value):
        if not (isinstance(call, list | tuple) and len(call) == 2 and isinstance(call[0], str)):
            raise FaultError(f"{field}[{i}]", "expected [name, arguments]")
        args = call[1] if isinstance(call[1], str) else json.dumps(call[1])
        calls.append((call[0], args))
    return tuple(calls)


READERS: Mapping[str, Callable[[str, Any], Any]] = {
    "text": _optional(_string),
    "latency": _number,
    "chunk_delay": _optional(_number),
    "chunk_chars": _optional(_integer),
    "tool_calls": _tool_calls,
    "code": _integer,
    "retry_after": _optional(_number),
    "retry_after_ms": _optional(_integer),
    "retry_after_date": _flag,
    "body": _body,
    "delay": _number,
    "after_chars": _integer,
    "duration": _number,
    "message": _string,
    "max_chars": _optional(_integer),
    "down_for": _number,
    "up_for": _optional(_number),
}
