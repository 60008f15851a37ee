"""Passive outlier ejection: take a member that keeps failing out of its group for a while.

Where a breaker guards one endpoint on its own, the detector looks at a group (the
targets of one model name) and bounds how much of it may be out at once, so that a
fault shared by every member, such as a bad request pattern, cannot empty the group.
It learns only from real traffic (`record`); active probes live in `health`.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Annotated

from pydantic import Field

from bastion.resilience.clock import Clock, SystemClock
from bastion.resilience.settings import Count, Duration, PositiveDuration, settings

_log = logging.getLogger(__name__)


@settings
class OutlierConfig:
    """When to eject and for how long (the `outlier:` section of the config).

    A member is ejected after `consecutive_errors` errors in a row, for

        min(base_ejection * times_ejected, max_ejection)

    seconds, `times_ejected` counting this ejection. A member that has stayed in for
    `max_ejection` seconds since its last return starts again from `base_ejection`.
    While it is out, one real request is let through as a probe `probe_after` seconds
    after the ejection, then after twice that, and so on up to `base_ejection`: a probe
    that succeeds brings the member back at once, so traffic returns within seconds of a
    recovery rather than at the end of a long ejection. `probe_after: 0` turns probing
    off.
    At most `floor(max_ejected_share * members)` members are out at once: with the
    default share a group of one is never ejected, as there is nothing to send its
    traffic to (its breaker still guards it).
    """

    consecutive_errors: Annotated[Count, Field(ge=1, le=1_000_000)] = 5
    base_ejection: PositiveDuration = 30.0
    max_ejection: PositiveDuration = 300.0
    max_ejected_share: Annotated[float, Field(ge=0, le=1)] = 0.5
    probe_after: Duration = 2.0

    def __post_init__(self) -> None:
        if self.max_ejection < self.base_ejection:
            raise ValueError(
                f"max_ejection must be at least base_ejection ({self.base_ejection:g}s), "
                f"got {self.max_ejection:g}s"
            )


DEFAULT_OUTLIER_CONFIG = OutlierConfig()


@dataclass(frozen=True, slots=True)
class Ejected:
    """`name` was taken out of `group` at `at` until `until`."""

    group: str
    name: str
    at: float
    until: float
    reason: str


@dataclass(frozen=True, slots=True)
class Restored:
    """`name` came back into `group` at `at`, its ejection time over."""

    group: str
    name: str
    at: float


class _Member:
    __slots__ = ("consecutive", "probe_at", "probe_gap", "restored_at", "times_ejected", "until")

    def __init__(self) -> None:
        self.consecutive = 0
        self.times_ejected = 0
        self.until: float | None = None  # set while ejected
        self.restored_at: float | None = None
        self.probe_at: float | None = None  # while ejected: when the next probe may go
        self.probe_gap = 0.0


class OutlierDetector:
    """Ejection state for the members of one group.

    Ejection ends lazily: `is_ejected()` and `ejected()` restore the members whose time
    is up and emit `Restored` for them. A name outside the group is ignored by
    `record()` and never ejected: a request that began before the group changed may
    still report on it. `on_event` exceptions are logged and swallowed.
    """

    def __init__(
        self,
        group: str,
        members: Iterable[str],
        config: OutlierConfig = DEFAULT_OUTLIER_CONFIG,
        *,
        clock: Clock | None = None,
        on_event: Callable[[Ejected | Restored], None] | None = None,
    ) -> None:
        self.group = group
        self.config = config
        self._clock = clock if clock is not None else SystemClock()
        self._on_event = on_event
        self._members = {name: _Member() for name in members}
        self._max_ejected = math.floor(config.max_ejected_share * len(self._members))

    @property
    def members(self) -> frozenset[str]:
        """The group's members."""
        return frozenset(self._members)

    @property
    def max_ejected(self) -> int:
        """How many members may be out at once."""
        return self._max_ejected

    def record(self, name: str, ok: bool) -> None:
        """Count the outcome of one real call to `name`; errors in a row eject it."""
        member = self._members.get(name)
        if member is None:
            return
        if ok:
            member.consecutive = 0
            if member.until is not None:  # a probe (or a panic-mode call) succeeded
                self._restore(name, member, self._clock.now())
            return
        if self._still_ejected(name, member):
            # Tried anyway in panic mode; it is out already and its time stands.
            return
        member.consecutive += 1
        if member.consecutive >= self.config.consecutive_errors:
            # When the group is at its limit the count keeps growing, so the member
            # goes out on its next error once a slot frees.
            self._try_eject(name, member)

    def is_ejected(self, name: str) -> bool:
        """Is `name` out now? Restores it if its time is up."""
        member = self._members.get(name)
        return member is not None and self._still_ejected(name, member)

    def admits(self, name: str) -> bool:
        """May a request be sent to `name` now? Yes while it is in; while it is out,
        only once each time a probe is due (the call that takes it is the probe)."""
        member = self._members.get(name)
        if member is None or not self._still_ejected(name, member):
            return True
        now = self._clock.now()
        if member.probe_at is None or now < member.probe_at:
            return False
        # The gap doubles, up to the base ejection time: a long outage is still
        # noticed to end within that.
        member.probe_gap = min(member.probe_gap * 2, self.config.base_ejection)
        member.probe_at = now + member.probe_gap
        return True

    def ejected(self) -> frozenset[str]:
        """The members out now (restoring those whose time is up)."""
        return frozenset(n for n, m in self._members.items() if self._still_ejected(n, m))

    def adopt(self, previous: OutlierDetector, names: frozenset[str]) -> None:
        """Take over what `previous` knew of the members named in `names` (a reload
        that left those endpoints unchanged): their error runs, ejections and how
        often they were ejected, so that a sick endpoint stays out across a reload."""
        for name, member in self._members.items():
            old = previous._members.get(name)
            if old is None or name not in names:
                continue
            member.consecutive = old.consecutive
            member.times_ejected = old.times_ejected
            member.until = old.until
            member.restored_at = old.restored_at
            member.probe_at = old.probe_at
            member.probe_gap = old.probe_gap

    # --- transitions ---------------------------------------------------------------

    def _still_ejected(self, name: str, member: _Member) -> bool:
        if member.until is None:
            return False
        now = self._clock.now()
        if now < member.until:
            return True
        self._restore(name, member, now)
        return False

    def _restore(self, name: str, member: _Member, now: float) -> None:
        member.until = None
        member.probe_at = None
        member.restored_at = now
        self._emit(Restored(self.group, name, now))

    def _try_eject(self, name: str, member: _Member) -> None:
        if len(self.ejected()) >= self._max_ejected:
            return
        cfg = self.config
        now = self._clock.now()
        if member.restored_at is not None and now - member.restored_at >= cfg.max_ejection:
            member.times_ejected = 0
        member.times_ejected += 1
        errors, member.consecutive = member.consecutive, 0
        member.until = now + min(cfg.base_ejection * member.times_ejected, cfg.max_ejection)
        if cfg.probe_after > 0:
            member.probe_gap = cfg.probe_after
            member.probe_at = now + cfg.probe_after
        self._emit(Ejected(self.group, name, now, member.until, f"{errors} consecutive errors"))

    def _emit(self, event: Ejected | Restored) -> None:
        if self._on_event is None:
            return
        try:
            self._on_event(event)
        except Exception:
            _log.exception("outlier %s: on_event hook failed on %s", self.group, event)
