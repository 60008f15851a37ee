"""A circuit breaker per endpoint: stop calling what keeps failing, then test it gently.

    CLOSED ──(N consecutive failures, or failure rate ≥ threshold)──► OPEN
    OPEN ──(open_for has passed; checked lazily)──► HALF_OPEN
    HALF_OPEN ──(half_open_probes successes)──► CLOSED
    HALF_OPEN ──(any failure)──► OPEN, for open_for × backoff (capped)

The breaker only decides; the attempt loop asks it (`try_acquire`) and tells it what
happened (`record_success`, `record_failure`, `release`). Only failures that say
something about the endpoint should be recorded (see `errors.ENDPOINT_FAULTS`).
It is meant for one event loop and takes no locks.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum
from typing import Annotated

from pydantic import Field

from bastion.resilience.clock import Clock, SlidingCounter, SystemClock
from bastion.resilience.settings import Count, PositiveDuration, settings

_log = logging.getLogger(__name__)


class BreakerState(StrEnum):
    """CLOSED lets calls through, OPEN refuses them, HALF_OPEN lets a few probes through."""

    CLOSED = "closed"
    OPEN = "open"
    HALF_OPEN = "half_open"


_DEFAULT_LONGEST_OPEN = 30.0


@settings
class BreakerConfig:
    """When to open and how long to stay open (the `breaker:` section of the config).

    Opens on `consecutive_failures` failures in a row, or once at least `min_calls`
    calls ended within the last `window` seconds and `failures / calls ≥
    failure_rate`. The n-th open in a row (re-opened from half-open without closing
    in between) lasts `min(open_for * backoff ** (n - 1), open_for_max)` seconds, where
    `open_for_max` left unset is 30 s, or `open_for` itself if that is longer.
    Half-open admits at most `half_open_probes` calls at once and closes after that
    many successes. The open time is short and capped low by default (5 s, at most
    30 s): half-open probes are cheap, and traffic should come back within seconds of
    a recovery, not minutes.
    """

    consecutive_failures: Annotated[Count, Field(ge=1, le=1_000_000)] = 5
    failure_rate: Annotated[float, Field(gt=0, le=1)] = 0.5
    window: PositiveDuration = 30.0
    min_calls: Annotated[Count, Field(ge=1, le=1_000_000)] = 20
    open_for: PositiveDuration = 5.0
    open_for_max: PositiveDuration | None = None
    backoff: Annotated[float, Field(ge=1, le=100)] = 2.0
    half_open_probes: Annotated[Count, Field(ge=1, le=1000)] = 2

    def __post_init__(self) -> None:
        if self.longest_open < self.open_for:
            raise ValueError(
                f"open_for_max must be at least open_for ({self.open_for:g}s), "
                f"got {self.longest_open:g}s"
            )

    @property
    def longest_open(self) -> float:
        """`open_for_max`, or its default: 30 s, or `open_for` if that is longer."""
        if self.open_for_max is not None:
            return self.open_for_max
        return max(_DEFAULT_LONGEST_OPEN, self.open_for)


DEFAULT_BREAKER_CONFIG = BreakerConfig()


@dataclass(frozen=True, slots=True)
class BreakerTransition:
    """A change of state. `open_for` is set when the new state is OPEN."""

    name: str
    old: BreakerState
    new: BreakerState
    at: float
    reason: str
    open_for: float | None = None


@dataclass(frozen=True, slots=True)
class BreakerSnapshot:
    """A breaker's state for a status page.

    `open_for` is the length of the current open period while open or half-open,
    and the base length while closed; `reopens_in` the seconds left while open.
    """

    name: str
    state: BreakerState
    consecutive_failures: int
    window_calls: int
    window_failures: int
    times_opened: int
    open_for: float
    reopens_in: float
    probes_in_flight: int


class CircuitBreaker:
    """The breaker of one endpoint. See the module docstring for the state machine.

    `on_transition` receives every change of state. It is called after the breaker
    has settled into its new state, and an exception it raises is logged and
    swallowed: a broken metrics hook must not break the breaker or the request.
    """

    def __init__(
        self,
        name: str,
        config: BreakerConfig = DEFAULT_BREAKER_CONFIG,
        *,
        clock: Clock | None = None,
        on_transition: Callable[[BreakerTransition], None] | None = None,
    ) -> None:
        self.name = name
        self.config = config
        self._clock = clock if clock is not None else SystemClock()
        self.on_transition = on_transition
        self._state = BreakerState.CLOSED
        self._consecutive = 0
        self._calls = SlidingCounter(config.window, self._clock)
        self._failures = SlidingCounter(config.window, self._clock)
        self._times_opened = 0
        self._open_streak = 0  # opens since the last close; sets the open time
        self._open_for = config.open_for
        self._opened_at = 0.0
        self._probes_in_flight = 0
        self._probe_successes = 0

    # --- reading -------------------------------------------------------------------

    @property
    def state(self) -> BreakerState:
        """The state now; an OPEN breaker whose time is up turns HALF_OPEN here."""
        if (
            self._state is BreakerState.OPEN
            and self._clock.now() >= self._opened_at + self._open_for
        ):
            self._probes_in_flight = 0
            self._probe_successes = 0
            self._move(BreakerState.HALF_OPEN, f"open for {self._open_for:g}s")
        return self._state

    def available(self) -> bool:
        """Would a call be admitted now? Reserves nothing: for planning only."""
        state = self.state
        if state is BreakerState.CLOSED:
            return True
        if state is BreakerState.OPEN:
            return False
        return self._probes_in_flight < self.config.half_open_probes

    def reopens_in(self) -> float:
        """Seconds until the breaker turns half-open; 0 unless it is open."""
        if self.state is not BreakerState.OPEN:
            return 0.0
        return max(0.0, self._opened_at + self._open_for - self._clock.now())

    def snapshot(self) -> BreakerSnapshot:
        """A frozen copy of the state, for status pages."""
        state = self.state
        return BreakerSnapshot(
            name=self.name,
            state=state,
            consecutive_failures=self._consecutive,
            window_calls=self._calls.total(),
            window_failures=self._failures.total(),
            times_opened=self._times_opened,
            open_for=self._open_for,
            reopens_in=self.reopens_in(),
            probes_in_flight=self._probes_in_flight,
        )

    # --- acting --------------------------------------------------------------------

    def try_acquire(self) -> bool:
        """Admit a call, or refuse it. In HALF_OPEN an admitted call takes a probe slot,
        which `record_success`, `record_failure` or `release` gives back."""
        state = self.state
        if state is BreakerState.CLOSED:
            return True
        if state is BreakerState.OPEN:
            return False
        if self._probes_in_flight >= self.config.half_open_probes:
            return False
        self._probes_in_flight += 1
        return True

    def release(self) -> None:
        """An admitted call ended with no verdict on the endpoint (cancelled, or the
        caller's fault): free its probe slot and count nothing."""
        if self.state is BreakerState.HALF_OPEN and self._probes_in_flight > 0:
            self._probes_in_flight -= 1

    def record_success(self) -> None:
        """An admitted call succeeded."""
        state = self.state
        if state is BreakerState.CLOSED:
            self._consecutive = 0
            self._calls.add()
        elif state is BreakerState.HALF_OPEN:
            # A call admitted before the breaker opened may land here too; its
            # success is evidence all the same, so it counts as a probe's.
            self._probes_in_flight = max(0, self._probes_in_flight - 1)
            self._probe_successes += 1
            if self._probe_successes >= self.config.half_open_probes:
                n = self._probe_successes
                self._close(f"{n} probe{'s' if n != 1 else ''} succeeded")
        # OPEN: a call admitted before the breaker opened; the verdict is already in.

    def record_failure(self) -> None:
        """An admitted call failed in a way that is the endpoint's fault."""
        state = self.state
        if state is BreakerState.CLOSED:
            self._consecutive += 1
            self._calls.add()
            self._failures.add()
            reason = self._trip_reason()
            if reason:
                self._open(reason)
        elif state is BreakerState.HALF_OPEN:
            self._open("a probe failed")

    # --- transitions ---------------------------------------------------------------

    def _trip_reason(self) -> str:
        cfg = self.config
        if self._consecutive >= cfg.consecutive_failures:
            return f"{self._consecutive} consecutive failures"
        calls = self._calls.total()
        failures = self._failures.total()
        if calls >= cfg.min_calls and failures >= cfg.failure_rate * calls:
            return f"{failures}/{calls} calls failed in {cfg.window:g}s"
        return ""

    def _open(self, reason: str) -> None:
        cfg = self.config
        self._open_for = min(cfg.open_for * cfg.backoff**self._open_streak, cfg.longest_open)
        self._open_streak += 1
        self._times_opened += 1
        self._opened_at = self._clock.now()
        self._probes_in_flight = 0
        self._probe_successes = 0
        self._move(BreakerState.OPEN, reason, open_for=self._open_for)

    def _close(self, reason: str) -> None:
        # A fresh start: old failures must not trip the breaker again at once, and
        # the next open, if any, is a first one again.
        self._open_streak = 0
        self._open_for = self.config.open_for
        self._consecutive = 0
        self._calls.clear()
        self._failures.clear()
        self._probes_in_flight = 0
        self._probe_successes = 0
        self._move(BreakerState.CLOSED, reason)

    def _move(self, new: BreakerState, reason: str, *, open_for: float | None = None) -> None:
        old, self._state = self._state, new
        if self.on_transition is None:
            return
        event = BreakerTransition(self.name, old, new, self._clock.now(), reason, open_for)
        try:
            self.on_transition(event)
        except Exception:
            _log.exception("breaker %s: on_transition hook failed on %s", self.name, event)
