"""What to do after a failed attempt: retry here, fail over, or return the error.

`RetryPolicy.decide()` is a pure function of the failure, the time left before the
request's deadline and a random source; it returns a `Decision` and the attempt loop
carries it out. The defaults follow DESIGN §4, one `KindPolicy` per `ErrorKind`.
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields, replace
from enum import StrEnum
from types import MappingProxyType
from typing import Any

from bastion.resilience.errors import Classification, ErrorKind


class Action(StrEnum):
    RETRY = "retry"
    """Try the same endpoint again after `Decision.delay` seconds."""
    FAILOVER = "failover"
    """Move on to the next candidate endpoint."""
    RETURN = "return"
    """Give the error to the caller: no other endpoint would answer differently."""


@dataclass(frozen=True, slots=True)
class KindPolicy:
    """How one kind of failure is handled.

    `retries` extra attempts on the same endpoint, each after a full-jitter backoff
    of `base` doubling per retry and capped at `max` seconds (or after the
    Retry-After the endpoint asked for, unless that exceeds `retry_after_cap`, in
    which case the endpoint is given up at once). Once retries are spent the request
    fails over if `failover`, else the error is returned to the caller.
    """

    retries: int = 0
    base: float = 0.0
    max: float = 0.0
    failover: bool = True
    retry_after_cap: float = 30.0

    def __post_init__(self) -> None:
        if isinstance(self.retries, bool) or not isinstance(self.retries, int):
            raise ValueError(f"retries must be an integer, got {self.retries!r}")
        if self.retries < 0:
            raise ValueError(f"retries must not be negative, got {self.retries}")
        for name in ("base", "max", "retry_after_cap"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int | float):
                raise ValueError(f"{name} must be a number of seconds, got {value!r}")
            if not (math.isfinite(value) and value >= 0):
                raise ValueError(f"{name} must be finite and not negative, got {value}")
        if not isinstance(self.failover, bool):
            raise ValueError(f"failover must be true or false, got {self.failover!r}")

    @property
    def give_up(self) -> Action:
        """The action once this endpoint is given up: fail over, or return the error."""
        return Action.FAILOVER if self.failover else Action.RETURN


_FIELDS = tuple(f.name for f in fields(KindPolicy))


@dataclass(frozen=True, slots=True)
class Decision:
    """What the attempt loop should do next; `delay` is seconds to wait first."""

    action: Action
    delay: float = 0.0
    reason: str = ""

    def __post_init__(self) -> None:
        if not (math.isfinite(self.delay) and self.delay >= 0):
            raise ValueError(f"delay must be finite and not negative, got {self.delay}")


@dataclass(frozen=True, slots=True)
class FailureInfo:
    """One failed attempt, as the policy sees it.

    `retries_so_far` counts the retries already made on this endpoint for this
    request (0 after the first attempt fails).
    """

    classification: Classification
    retries_so_far: int
    endpoint: str


_FAIL_OVER = KindPolicy()
DEFAULT_KIND_POLICIES: Mapping[ErrorKind, KindPolicy] = MappingProxyType(
    {
        ErrorKind.CONNECTION: _FAIL_OVER,
        ErrorKind.TIMEOUT: _FAIL_OVER,  # a hedge, not a retry, is the answer to slowness
        ErrorKind.RATE_LIMITED: KindPolicy(retries=5, base=1.0, max=16.0, retry_after_cap=16.0),
        ErrorKind.QUOTA_EXCEEDED: _FAIL_OVER,
        ErrorKind.UNAVAILABLE: KindPolicy(retries=1, base=0.5, max=1.0),
        ErrorKind.SERVER_ERROR: KindPolicy(retries=2, base=0.2, max=0.4),
        ErrorKind.PROTOCOL: _FAIL_OVER,
        # The router restricts the next candidates to larger context windows.
        ErrorKind.CONTEXT_LENGTH: _FAIL_OVER,
        # Another provider may well accept what this one refused, but answering a
        # refused prompt elsewhere is the deployment's choice to make, not ours.
        ErrorKind.CONTENT_FILTER: KindPolicy(failover=False),
        ErrorKind.INVALID_REQUEST: KindPolicy(failover=False),
        # Credentials and deployments are per endpoint: another may well have them,
        # but asking this one again cannot help.
        ErrorKind.AUTH: _FAIL_OVER,
        ErrorKind.FORBIDDEN: _FAIL_OVER,
        ErrorKind.NOT_FOUND: _FAIL_OVER,
        ErrorKind.PREFILL_REJECTED: _FAIL_OVER,
        ErrorKind.UNKNOWN: _FAIL_OVER,
    }
)
"""The defaults of DESIGN §4."""

# Beyond 2**62 the cap has long taken over; the bound keeps the float finite.
_MAX_EXPONENT = 62


def full_jitter(attempt: int, base: float, cap: float, rng: random.Random) -> float:
    """Backoff before retry number `attempt` (0 for the first retry), in seconds:

        uniform(0, min(cap, base * 2 ** attempt))

    Full jitter spreads the retries of many clients over the whole interval, which
    keeps them from arriving at the overloaded endpoint together.
    """
    ceiling = min(cap, base * 2.0 ** min(max(attempt, 0), _MAX_EXPONENT))
    return rng.uniform(0.0, ceiling) if ceiling > 0 else 0.0


def _freeze(kinds: Mapping[ErrorKind, KindPolicy]) -> Mapping[ErrorKind, KindPolicy]:
    return MappingProxyType(dict(kinds))


def _default_kinds() -> Mapping[ErrorKind, KindPolicy]:
    return DEFAULT_KIND_POLICIES


def _kind(key: ErrorKind | str) -> ErrorKind:
    if isinstance(key, ErrorKind):
        return key
    try:
        return ErrorKind(key)
    except ValueError:
        valid = ", ".join(k.value for k in ErrorKind)
        raise ValueError(f"unknown error kind {key!r} (one of: {valid})") from None


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """Per-kind retry and failover rules, with an optional user callable in front.

    `custom(failure)` is consulted first; it returns a `Decision`, or None to let the
    table decide. Kinds missing from `kinds` follow its UNKNOWN entry.
    """

    kinds: Mapping[ErrorKind, KindPolicy] = field(default_factory=_default_kinds)
    custom: Callable[[FailureInfo], Decision | None] | None = None

    def __post_init__(self) -> None:
        # A caller's dict must not change the policy behind its back.
        object.__setattr__(self, "kinds", _freeze(self.kinds))

    def policy_for(self, kind: ErrorKind) -> KindPolicy:
        """The rules for `kind`, falling back to UNKNOWN's, then to the defaults."""
        for key in (kind, ErrorKind.UNKNOWN):
            found = self.kinds.get(key)
            if found is not None:
                return found
        return DEFAULT_KIND_POLICIES[ErrorKind.UNKNOWN]

    def override(
        self, overrides: Mapping[ErrorKind | str, KindPolicy | Mapping[str, Any]]
    ) -> RetryPolicy:
        """A copy with `overrides` applied per kind.

        A `KindPolicy` replaces the kind's rules; a mapping updates only the fields it
        names, on top of the rules that apply now. Errors name the kind and the field:
        `retry policy for rate_limited: retries must not be negative, got -1`.
        """
        kinds = dict(self.kinds)
        for key, value in overrides.items():
            kind = _kind(key)
            if isinstance(value, KindPolicy):
                kinds[kind] = value
                continue
            if not isinstance(value, Mapping):
                raise TypeError(
                    f"retry policy for {kind.value}: expected a KindPolicy or a mapping "
                    f"of fields, got {type(value).__name__}"
                )
            unknown = sorted(str(name) for name in value if name not in _FIELDS)
            if unknown:
                raise ValueError(
                    f"retry policy for {kind.value}: unknown field {', '.join(unknown)} "
                    f"(fields: {', '.join(_FIELDS)})"
                )
            try:
                kinds[kind] = replace(self.policy_for(kind), **value)
            except ValueError as exc:
                raise ValueError(f"retry policy for {kind.value}: {exc}") from None
        return replace(self, kinds=kinds)

    def decide(
        self, failure: FailureInfo, *, remaining: float | None, rng: random.Random
    ) -> Decision:
        """Decide what follows `failure`.

        While `retries_so_far < retries`: wait the endpoint's Retry-After if it gave
        one (give the endpoint up at once if that exceeds `retry_after_cap`), else
        `full_jitter(retries_so_far, base, max)`, then RETRY. A wait that does not fit
        in the `remaining` seconds before the deadline gives the endpoint up with
        reason "deadline". Once retries are spent: FAILOVER if the kind fails over,
        else RETURN. The deadline bounds a custom callable's RETRY too.
        """
        kind = failure.classification.kind
        policy = self.policy_for(kind)
        decision = self.custom(failure) if self.custom is not None else None
        if decision is None:
            decision = self._from_table(kind, policy, failure, rng)
        retrying = decision.action is Action.RETRY
        if retrying and remaining is not None and decision.delay >= remaining:
            return Decision(policy.give_up, 0.0, "deadline")
        return decision

    @staticmethod
    def _from_table(
        kind: ErrorKind, policy: KindPolicy, failure: FailureInfo, rng: random.Random
    ) -> Decision:
        done = failure.retries_so_far
        if done >= policy.retries:
            if policy.retries:
                return Decision(policy.give_up, 0.0, f"{kind.value}: {done} retries spent")
            return Decision(policy.give_up, 0.0, f"{kind.value}: not retried")
        retry_after = failure.classification.retry_after
        if retry_after is not None:
            # Written so that a NaN from a careless adapter gives up rather than waits.
            if not retry_after <= policy.retry_after_cap:
                return Decision(
                    policy.give_up,
                    0.0,
                    f"{kind.value}: retry-after {retry_after:g}s exceeds the "
                    f"{policy.retry_after_cap:g}s cap",
                )
            delay, source = max(0.0, retry_after), "retry-after"
        else:
            delay, source = full_jitter(done, policy.base, policy.max, rng), "backoff"
        return Decision(
            Action.RETRY,
            delay,
            f"{kind.value}: retry {done + 1}/{policy.retries} after {delay:.3g}s ({source})",
        )
