"""What the caller gets when the router cannot produce an answer."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Self

from bastion.resilience.errors import BastionError, ErrorKind, UpstreamError
from bastion.types import AttemptRecord


@dataclass(frozen=True, slots=True)
class UpstreamDetail:
    """What the upstream said about a request it refused as the caller's fault (a bad
    request, a prompt too long, refused content), so the caller can fix it: its own
    message, and the `param` and `code` where it named them. Secrets are scrubbed."""

    message: str
    param: str | None = None
    code: str | None = None


class FailoverError(ExceptionGroup[Exception], BastionError):
    """Every attempt failed, or one failed in a way that must be returned (a bad
    request, a refused prompt). Holds each attempt's exception and its record.

    `kind` and `status` are those of the attempt that decided the outcome: the last
    one, or the one whose kind says "return this to the caller". `detail` is the
    upstream's own word on a request it refused as the caller's fault.
    """

    attempts: tuple[AttemptRecord, ...]
    kind: ErrorKind
    status: int | None
    detail: UpstreamDetail | None

    def __new__(
        cls,
        message: str,
        exceptions: Sequence[Exception],
        attempts: Sequence[AttemptRecord] = (),
        kind: ErrorKind = ErrorKind.UNKNOWN,
        detail: UpstreamDetail | None = None,
    ) -> Self:
        self = super().__new__(cls, message, exceptions)
        self.attempts = tuple(attempts)
        self.kind = kind
        self.detail = detail
        last = exceptions[-1] if exceptions else None
        self.status = last.status if isinstance(last, UpstreamError) else None
        return self

    def __init__(
        self,
        message: str,
        exceptions: Sequence[Exception],
        attempts: Sequence[AttemptRecord] = (),
        kind: ErrorKind = ErrorKind.UNKNOWN,
        detail: UpstreamDetail | None = None,
    ) -> None:
        super().__init__(message, exceptions)

    def derive(self, excs: Sequence[Exception]) -> FailoverError:  # type: ignore[override]
        return FailoverError(self.message, excs, self.attempts, self.kind, self.detail)

    def __str__(self) -> str:
        lines = [self.message]
        lines += [
            f"  {a.endpoint} ({a.model}): {a.kind}"
            + (f" HTTP {a.status}" if a.status is not None else "")
            + f" after {a.duration * 1000:.0f} ms"
            + (f" — {a.message}" if a.message else "")
            for a in self.attempts
        ]
        return "\n".join(lines)


class NoTargetAvailable(BastionError):
    """Nothing could be tried: every endpoint of the plan is isolated or excluded."""

    def __init__(self, name: str, excluded: Sequence[str] = ()) -> None:
        detail = f" (out of service: {', '.join(excluded)})" if excluded else ""
        super().__init__(f"no endpoint available for {name!r}{detail}")
        self.name = name
        self.excluded = tuple(excluded)
        self.kind = ErrorKind.UNAVAILABLE
