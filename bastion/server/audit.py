"""The audit log: who did what to the control plane, and how it ended.

One structured log line (logger `bastion.audit`, event `audit`) per control-plane
action and per refused control-plane attempt, with `actor` (the key's name, never the
key), `action`, `target`, `outcome` and `timestamp` (ISO 8601, UTC). The latest entries
are also kept in memory, bounded, for a control endpoint or a test to read.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import structlog

# A path typed by a client can be long; an audit line stays readable and bounded.
_MAX_FIELD = 256


@dataclass(frozen=True, slots=True)
class AuditEntry:
    """One audited action. `at` is seconds since the epoch."""

    at: float
    actor: str
    action: str
    target: str
    outcome: str

    @property
    def timestamp(self) -> str:
        return datetime.fromtimestamp(self.at, UTC).isoformat(timespec="milliseconds")


def _bounded(text: str) -> str:
    return text if len(text) <= _MAX_FIELD else text[: _MAX_FIELD - 1] + "…"


class AuditLog:
    """Records control-plane actions.

    `record("ops", "isolate", "primary", "ok")` writes one log line and keeps the entry.
    The clock is injectable so that tests can pin timestamps; `keep` bounds the entries
    held in memory (the log lines are the durable record).
    """

    def __init__(
        self,
        *,
        clock: Callable[[], float] = time.time,
        keep: int = 1000,
        logger: Any | None = None,
    ) -> None:
        self._clock = clock
        self._recent: deque[AuditEntry] = deque(maxlen=keep)
        self._log = logger if logger is not None else structlog.get_logger("bastion.audit")

    def record(self, actor: str, action: str, target: str, outcome: str) -> AuditEntry:
        entry = AuditEntry(
            self._clock(), _bounded(actor), _bounded(action), _bounded(target), _bounded(outcome)
        )
        self._recent.append(entry)
        self._log.info(
            "audit",
            actor=entry.actor,
            action=entry.action,
            target=entry.target,
            outcome=entry.outcome,
            timestamp=entry.timestamp,
        )
        return entry

    def recent(self) -> tuple[AuditEntry, ...]:
        """The latest entries, oldest first."""
        return tuple(self._recent)
