"""Active health checks: probe each member on a timer and track whether it answers.

The checker knows nothing of what a probe does (a GET of `/models`, a one-token
completion, a ping of a tool server): a probe is any coroutine function that returns
when the member is healthy and raises when it is not. `HealthTracker` is the decision
(how many results in a row flip the verdict); `HealthChecker` the thin loop around it.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass

from bastion.resilience.clock import Clock, SystemClock, wait_for

_log = logging.getLogger(__name__)

Probe = Callable[[], Awaitable[None]]

# Probes of members added together would otherwise stay in step forever.
_JITTER = 0.1


@dataclass(frozen=True, slots=True)
class HealthChange:
    """`name` became healthy or unhealthy at `at`; `reason` is the last probe's story."""

    name: str
    healthy: bool
    at: float
    reason: str


class HealthTracker:
    """The verdict on one member, from consecutive probe results.

    Starts healthy (a member is trusted until probes say otherwise, so a restart does
    not empty the pool). `unhealthy_after` failures in a row make it unhealthy, and
    `healthy_after` successes in a row make it healthy again; a result that agrees
    with the verdict resets the count against it.
    """

    def __init__(
        self,
        name: str,
        *,
        healthy_after: int = 2,
        unhealthy_after: int = 2,
        clock: Clock | None = None,
    ) -> None:
        if healthy_after < 1 or unhealthy_after < 1:
            raise ValueError(
                f"health thresholds must be at least 1, got healthy_after={healthy_after}, "
                f"unhealthy_after={unhealthy_after}"
            )
        self.name = name
        self.healthy_after = healthy_after
        self.unhealthy_after = unhealthy_after
        self._clock = clock if clock is not None else SystemClock()
        self._healthy = True
        self._against = 0  # results in a row that disagree with the verdict

    @property
    def healthy(self) -> bool:
        """The current verdict."""
        return self._healthy

    def record(self, ok: bool, reason: str = "") -> HealthChange | None:
        """Count one probe result; returns the change if the verdict flipped."""
        if ok == self._healthy:
            self._against = 0
            return None
        self._against += 1
        needed = self.healthy_after if ok else self.unhealthy_after
        if self._against < needed:
            return None
        self._healthy = ok
        self._against = 0
        return HealthChange(self.name, ok, self._clock.now(), reason)


@dataclass(frozen=True, slots=True)
class _Check:
    probe: Probe
    interval: float
    timeout: float
    tracker: HealthTracker


class HealthChecker:
    """Probes members on their own intervals, one task per member.

    Each task runs `check_once`, then sleeps `interval` (±10 % jitter) on the clock.
    Names not added are healthy: no news is good news. `on_change` receives each
    change of verdict; its exceptions are logged and swallowed.
    """

    def __init__(
        self,
        *,
        clock: Clock | None = None,
        on_change: Callable[[HealthChange], None] | None = None,
        rng: random.Random | None = None,
    ) -> None:
        self._clock = clock if clock is not None else SystemClock()
        self._on_change = on_change
        self._rng = rng if rng is not None else random.Random()
        self._checks: dict[str, _Check] = {}
        self._tasks: dict[str, asyncio.Task[None]] = {}  # the current task per member
        self._live: set[asyncio.Task[None]] = set()  # every task not yet ended
        self._running = False

    def add(
        self,
        name: str,
        probe: Probe,
        *,
        interval: float,
        timeout: float,
        healthy_after: int = 2,
        unhealthy_after: int = 2,
        tracker: HealthTracker | None = None,
    ) -> None:
        """Watch `name` with `probe`, which raises when the member is unhealthy.

        If the checker is running, probing starts at once. A `tracker` carried over
        from another checker keeps its verdict (a config reload does not make a down
        member look healthy).
        """
        if name in self._checks:
            raise ValueError(f"health check {name!r} already added")
        if not interval > 0 or not timeout > 0:
            raise ValueError(
                f"health check {name!r}: interval and timeout must be positive, "
                f"got interval={interval}, timeout={timeout}"
            )
        if tracker is None:
            tracker = HealthTracker(
                name,
                healthy_after=healthy_after,
                unhealthy_after=unhealthy_after,
                clock=self._clock,
            )
        self._checks[name] = _Check(probe, interval, timeout, tracker)
        if self._running:
            self._spawn(name)

    def remove(self, name: str) -> None:
        """Stop watching `name`; its task is cancelled (and awaited by `stop`)."""
        self._checks.pop(name, None)
        task = self._tasks.pop(name, None)
        if task is not None:
            task.cancel()

    def tracker(self, name: str) -> HealthTracker | None:
        check = self._checks.get(name)
        return None if check is None else check.tracker

    def is_healthy(self, name: str) -> bool:
        """The verdict on `name`; True for names not watched."""
        check = self._checks.get(name)
        return check is None or check.tracker.healthy

    def snapshot(self) -> Mapping[str, bool]:
        """Every watched member's verdict, for status pages."""
        return {name: check.tracker.healthy for name, check in self._checks.items()}

    async def check_once(self, name: str) -> bool:
        """Probe `name` once, bounded by its timeout, and record the result.

        Returns whether the probe succeeded. A probe that raises or outlasts its
        timeout is a failure; cancellation of the caller propagates.
        """
        check = self._checks.get(name)
        if check is None:
            raise KeyError(f"no health check named {name!r}")
        try:
            await wait_for(self._clock, check.probe(), check.timeout)
        except TimeoutError:
            ok, reason = False, f"no answer within {check.timeout:g}s"
        except Exception as exc:
            ok, reason = False, f"{type(exc).__name__}: {exc}"
        else:
            ok, reason = True, "probe succeeded"
        change = check.tracker.record(ok, reason)
        if change is not None:
            self._emit(change)
        return ok

    async def start(self) -> None:
        """Start one probing task per member; calling it again does nothing."""
        if self._running:
            return
        self._running = True
        for name in self._checks:
            self._spawn(name)

    async def stop(self) -> None:
        """Cancel every probing task and wait until all have ended."""
        self._running = False
        self._tasks.clear()
        # Includes the tasks of removed members that have not finished yet.
        tasks = set(self._live)
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.wait(tasks)

    def _spawn(self, name: str) -> None:
        task = asyncio.create_task(self._loop(name), name=f"health:{name}")
        self._tasks[name] = task
        self._live.add(task)
        task.add_done_callback(self._live.discard)

    async def _loop(self, name: str) -> None:
        # The first probe runs at once, so a member's verdict is known soon after start.
        while (check := self._checks.get(name)) is not None:
            await self.check_once(name)
            spread = 1.0 + self._rng.uniform(-_JITTER, _JITTER)
            await self._clock.sleep(check.interval * spread)

    def _emit(self, change: HealthChange) -> None:
        if self._on_change is None:
            return
        try:
            self._on_change(change)
        except Exception:
            _log.exception("health: on_change hook failed on %s", change)
