"""When to restart a worker that died, and when to stop trying.

A worker that ran for `stable_after` seconds or more is restarted at once. One that
dies sooner is in a crash loop in the making: it is restarted after `first_delay`, then
twice as long each time (capped at `max_delay`), and after `give_up_after` such quick
exits in a row it is not restarted at all.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True, slots=True)
class RestartPolicy:
    stable_after: float = 30.0
    first_delay: float = 0.5
    max_delay: float = 10.0
    give_up_after: int = 5


@dataclass(slots=True)
class RestartTracker:
    """One worker slot's record of quick exits; `after_exit` decides."""

    policy: RestartPolicy = field(default_factory=RestartPolicy)
    quick_exits: int = 0

    def after_exit(self, ran_for: float) -> float | None:
        """Seconds to wait before the restart, or None: give up on this worker."""
        if ran_for >= self.policy.stable_after:
            self.quick_exits = 0
            return 0.0
        self.quick_exits += 1
        if self.quick_exits >= self.policy.give_up_after:
            return None
        delay: float = self.policy.first_delay * 2 ** (self.quick_exits - 1)
        return min(delay, self.policy.max_delay)
