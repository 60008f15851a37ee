"""Structured logs as one consumer of the events."""

from __future__ import annotations

import dataclasses
from enum import Enum
from typing import Any

import structlog

from bastion.observability.events import AttemptFinished, Event, RequestFinished

_DEBUG_ONLY = (AttemptFinished,)


def _fields(event: Event) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for f in dataclasses.fields(event):
        value = getattr(event, f.name)
        out[f.name] = value.value if isinstance(value, Enum) else value
    return out


class EventLogger:
    """An event hook that writes each event as one structured log line.

    Successful attempts and requests are logged at debug level; everything that
    says something went wrong, or changed state, at info or warning.
    """

    def __init__(self, logger: Any | None = None) -> None:
        self._log = logger if logger is not None else structlog.get_logger("bastion")

    def __call__(self, event: Event) -> None:
        name = _snake(type(event).__name__)
        fields = _fields(event)
        if isinstance(event, _DEBUG_ONLY) and event.ok:
            self._log.debug(name, **fields)
        elif isinstance(event, RequestFinished):
            (self._log.debug if event.ok else self._log.warning)(name, **fields)
        else:
            self._log.info(name, **fields)


def _snake(name: str) -> str:
    return "".join(f"_{c.lower()}" if c.isupper() else c for c in name).lstrip("_")
