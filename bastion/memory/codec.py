"""Messages, steps and JSON documents as bytes: the one wire format every store keeps.

Every store writes a message as the same compact JSON object, so a thread can be moved
between backends byte for byte and one decoder checks what comes back. Fields equal to
their defaults are left out (most messages are `{"role":…,"content":…}`). Decoding
validates: a row that does not decode to a well-formed message raises `CorruptRecord`
instead of handing the agent a half-understood history.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any, cast, get_args

import orjson

from bastion.memory.base import CorruptRecord, RunRecord, StepRecord, Thread
from bastion.types import Message, Role, ToolCall

ROLES: frozenset[str] = frozenset(get_args(Role))


def encode_message(message: Message) -> bytes:
    """The message as compact JSON; a role outside `Role` is refused before any write."""
    if message.role not in ROLES:
        raise CorruptRecord(f"cannot store a message with role {message.role!r}")
    doc: dict[str, Any] = {"role": message.role}
    if message.content is not None:
        doc["content"] = message.content
    if message.tool_calls:
        doc["tool_calls"] = [
            {"id": c.id, "name": c.name, "arguments": c.arguments} for c in message.tool_calls
        ]
    if message.tool_call_id is not None:
        doc["tool_call_id"] = message.tool_call_id
    if message.name is not None:
        doc["name"] = message.name
    if message.parts:
        doc["parts"] = list(message.parts)
    return orjson.dumps(doc)


def decode_message(data: bytes | str) -> Message:
    """The message `encode_message` wrote; CorruptRecord for anything else."""
    try:
        doc = orjson.loads(data)
        role = doc["role"]
        if role not in ROLES:
            raise ValueError(f"unknown role {role!r}")
        calls = tuple(
            ToolCall(id=_str(c["id"]), name=_str(c["name"]), arguments=_str(c["arguments"]))
            for c in doc.get("tool_calls", ())
        )
        return Message(
            role=cast(Role, role),
            content=_opt_str(doc.get("content")),
            tool_calls=calls,
            tool_call_id=_opt_str(doc.get("tool_call_id")),
            name=_opt_str(doc.get("name")),
            parts=_parts(doc.get("parts", [])),
        )
    except (orjson.JSONDecodeError, KeyError, TypeError, ValueError, AttributeError) as exc:
        raise CorruptRecord(f"stored message does not decode: {exc}") from exc


def _parts(value: Any) -> tuple[Mapping[str, Any], ...]:
    if not isinstance(value, list) or not all(isinstance(p, dict) for p in value):
        raise ValueError("parts must be a list of objects")
    return tuple(value)


def dumps(doc: Mapping[str, Any] | None) -> str:
    """A JSON document (metadata, a step's input or output) as text; None as `{}`."""
    return orjson.dumps(dict(doc or {})).decode()


def loads(data: bytes | str | None) -> dict[str, Any]:
    """The document `dumps` wrote; NULL/absent columns read as `{}`."""
    if data is None or data in ("", b""):
        return {}
    doc = orjson.loads(data)
    if not isinstance(doc, dict):
        raise CorruptRecord(f"expected a JSON object, got {type(doc).__name__}")
    return doc


def thread_from_row(row: Mapping[str, Any] | Any) -> Thread:
    """A thread from a SQL row (sqlite3.Row or asyncpg Record: both read by column)."""
    return Thread(
        id=row["id"],
        resource_id=row["resource_id"],
        version=int(row["version"]),
        created_at=float(row["created_at"]),
        updated_at=float(row["updated_at"]),
        metadata=loads(row["metadata"]),
    )


def step_from_row(run_id: str, row: Mapping[str, Any] | Any) -> StepRecord:
    """A step from a row (SQL) or a decoded document (Redis) with the step's fields."""
    return StepRecord(
        run_id=run_id,
        index=int(row["index"]),
        kind=row["kind"],
        name=row["name"],
        input=loads(row["input"]),
        output=loads(row["output"]),
        status=row["status"],
        started_at=float(row["started_at"]),
        ended_at=float(row["ended_at"]),
    )


def step_to_doc(step: StepRecord) -> dict[str, Any]:
    """The step as the flat document `step_from_row` reads (JSON fields as text), in
    `STEP_COLUMNS` order after `run_id`."""
    return {
        "index": step.index,
        "kind": step.kind,
        "name": step.name,
        "input": dumps(step.input),
        "output": dumps(step.output),
        "status": step.status,
        "started_at": step.started_at,
        "ended_at": step.ended_at,
    }


# Column orders shared by the two SQL stores' `runs` and `steps` tables.
RUN_COLUMNS = (
    "id",
    "agent",
    "thread_id",
    "resource_id",
    "status",
    "started_at",
    "ended_at",
    "error",
    "replica",
)
STEP_COLUMNS = (
    "run_id",
    "index",
    "kind",
    "name",
    "input",
    "output",
    "status",
    "started_at",
    "ended_at",
)


def run_values(run: RunRecord, replica: str) -> tuple[Any, ...]:
    """The run's fields in `RUN_COLUMNS` order (its steps are stored apart), recorded
    by `replica`: the store that writes it, whatever the record says."""
    return (*(getattr(run, c) for c in RUN_COLUMNS[:-1]), replica)


def step_values(step: StepRecord) -> tuple[Any, ...]:
    """The step's fields in `STEP_COLUMNS` order, JSON fields as text."""
    return (step.run_id, *step_to_doc(step).values())


def run_from_row(row: Mapping[str, Any] | Any, steps: Iterable[Any]) -> RunRecord:
    """A run from its row and its steps' rows (in index order)."""
    return RunRecord(
        id=row["id"],
        agent=row["agent"],
        thread_id=row["thread_id"],
        resource_id=row["resource_id"],
        status=row["status"],
        started_at=float(row["started_at"]),
        ended_at=None if row["ended_at"] is None else float(row["ended_at"]),
        error=row["error"],
        steps=tuple(step_from_row(row["id"], s) for s in steps),
        replica=row["replica"],
    )


def _str(value: object) -> str:
    if not isinstance(value, str):
        raise TypeError(f"expected a string, got {type(value).__name__}")
    return value


def _opt_str(value: object) -> str | None:
    return None if value is None else _str(value)
