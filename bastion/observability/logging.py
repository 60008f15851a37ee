"""Structured logs as one consumer of the events."""

from __future__ import annotations

import dataclasses
import logging
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


def configure_logging(*, json: bool = False, level: int = logging.INFO) -> None:
    """Process-wide log setup for `bastion serve`: one line per event, and tracebacks
    WITHOUT local variables — a frame's locals may hold an API key or a header."""
    renderer: Any
    if json:
        renderer = structlog.processors.JSONRenderer()
        exceptions: list[Any] = [structlog.processors.dict_tracebacks]
    else:
        renderer = structlog.dev.ConsoleRenderer(
            colors=False, exception_formatter=structlog.dev.plain_traceback
        )
        exceptions = []
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            *exceptions,
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(level),
        cache_logger_on_first_use=True,
    )
    logging.basicConfig(level=level, format="%(levelname)s %(name)s: %(message)s")
