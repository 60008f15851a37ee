"""What a fake upstream saw and did, one record per request."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, fields
from typing import Any


@dataclass(frozen=True, slots=True)
class AttemptLog:
    """One request to a fake upstream.

    Times are `time.monotonic()` seconds — one clock for every process on the host, so
    a test can compare attempts across upstreams and against its own clock.
    `outcome` is the behaviour served ("ok", a fault kind such as "status" or "cut",
    "bad_request") or "client_disconnected" when the client left first. `text` is the
    answer text actually sent; `body` the request's JSON as received.
    """

    upstream: str
    api: str
    model: str
    stream: bool
    prefill: bool
    messages: tuple[Mapping[str, Any], ...]
    started_at: float
    headers_at: float | None
    first_token_at: float | None
    ended_at: float
    status: int | None
    outcome: str
    text: str
    body: Mapping[str, Any]

    @property
    def duration(self) -> float:
        return self.ended_at - self.started_at

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict (what `GET /_fleet/attempts` returns)."""
        out = asdict(self)
        out["messages"] = list(self.messages)
        return out

    @staticmethod
    def from_dict(data: Mapping[str, Any]) -> AttemptLog:
        """Rebuild a record from `to_dict()` output, e.g. read from another process."""
        values = {f.name: data[f.name] for f in fields(AttemptLog)}
        values["messages"] = tuple(values["messages"])
        return AttemptLog(**values)
