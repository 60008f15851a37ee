"""Per-key limits: `requests_per_minute` and `tokens_per_minute`, on the `limits` library.

Requests are counted in a moving window: exact, and one entry per request is cheap at
request rates. Tokens are counted in a sliding window counter: two counters per key
whatever the budget, where a moving window would hold one entry per token.

`admit` is asked before a request goes upstream, with the prompt's estimated tokens:
it refuses while the key's token budget has no room for them, and otherwise counts the
request. The real usage is recorded after the answer with `record_tokens`, so a burst of
concurrent requests from one key can overshoot its token budget by what they use
together; the next requests then wait until the window has room again.

Limits are per process: with `--workers N` each worker counts on its own. Limits shared
by all workers come with the shared (Redis) state.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

from limits import RateLimitItemPerMinute
from limits.storage import MemoryStorage
from limits.strategies import MovingWindowRateLimiter, SlidingWindowCounterRateLimiter

from bastion.config.schema import AuthSettings

if TYPE_CHECKING:
    from bastion.server.auth import Principal


class _PerMinute(RateLimitItemPerMinute):
    """A per-minute limit whose counters are named by the key alone.

    The library puts the amount into the storage key too, which would make a reload
    that changes a key's limit start it from zero; a key that was cut to a lower limit
    would get a fresh burst.
    """

    def key_for(self, *identifiers: bytes | str | int | float) -> str:
        return "/".join([self.namespace, *(str(i) for i in identifiers)])


@dataclass(frozen=True, slots=True)
class _KeyLimits:
    requests: _PerMinute | None
    tokens: _PerMinute | None


def _rules(auth: AuthSettings | None) -> dict[str, _KeyLimits]:
    rules = {}
    for key in auth.keys if auth else ():
        requests = key.requests_per_minute
        tokens = key.tokens_per_minute
        if requests is None and tokens is None:
            continue
        rules[key.name] = _KeyLimits(
            _PerMinute(requests, namespace="bastion-requests") if requests else None,
            _PerMinute(tokens, namespace="bastion-tokens") if tokens else None,
        )
    return rules


def sliding_wait(previous: int, current: int, left: float, window: float, target: float) -> float:
    """Seconds until a sliding window counter falls to `target`.

    The counter is `previous * left / window + current`: the previous window's count
    fades out linearly over the `left` seconds that remain of the current window. If
    `current` alone is within `target`, the fading previous count reaches it before the
    window ends; otherwise the wait runs past the window's end, where `current` becomes
    the count that fades.
    """
    if current <= target:
        if previous <= 0:
            return 0.0
        excess = previous * left / window + current - target
        return max(0.0, excess * window / previous)
    return left + (current - target) * window / current


class RateLimits:
    """Per-key request and token limits, for the keys that have them.

    `admit` returns None when a request may go, else the seconds until it may;
    `record_tokens` counts an answer's real usage. The counters live in one in-memory
    storage that `reconfigured` hands on, so a config reload does not reset them.
    `storage` is the seam for shared limits later (the library has a Redis storage
    with the same interface).
    """

    def __init__(self, auth: AuthSettings | None, storage: MemoryStorage | None = None) -> None:
        self._rules: Mapping[str, _KeyLimits] = _rules(auth)
        self._storage = storage if storage is not None else MemoryStorage()
        self._requests = MovingWindowRateLimiter(self._storage)
        self._tokens = SlidingWindowCounterRateLimiter(self._storage)

    def reconfigured(self, auth: AuthSettings | None) -> RateLimits:
        """Limits for a new config. Keys that remain keep what they used in the window
        (also when their limit changed); the counters of keys that went are dropped."""
        new = RateLimits(auth, self._storage)
        for name, old in self._rules.items():
            kept = new._rules.get(name)
            if old.requests is not None and (kept is None or kept.requests is None):
                self._requests.clear(old.requests, name)
            if old.tokens is not None and (kept is None or kept.tokens is None):
                self._tokens.clear(old.tokens, name)
        return new

    def admit(self, principal: Principal, estimated_tokens: int) -> float | None:
        """Count one request for the key, or say how long until it may come back.

        The token check comes first and only looks, so that a request refused for
        tokens does not use up one of the key's requests too.
        """
        rule = self._rules.get(principal.name)
        if rule is None:
            return None
        name = principal.name
        if rule.tokens is not None:
            # A prompt bigger than the whole budget is let into an empty window, rather
            # than refused forever with a Retry-After that could never come true.
            cost = max(1, min(estimated_tokens, rule.tokens.amount))
            if not self._tokens.test(rule.tokens, name, cost=cost):
                return self._token_wait(rule.tokens, name, cost)
        if rule.requests is not None and not self._requests.hit(rule.requests, name):
            # The moving window frees its oldest entry at reset_time; the library
            # reads time.time(), so this does too.
            reset = self._requests.get_window_stats(rule.requests, name).reset_time
            return max(reset - time.time(), 0.001)
        return None

    def record_tokens(self, principal: Principal, tokens: int) -> None:
        """Count an answer's real token usage against the key's budget."""
        rule = self._rules.get(principal.name)
        if rule is None or rule.tokens is None or tokens <= 0:
            return
        # The limiter refuses a hit that would overflow, and would then record nothing;
        # filling the budget instead makes the key wait for the window to slide.
        remaining = self._tokens.get_window_stats(rule.tokens, principal.name).remaining
        used = min(tokens, remaining)
        if used > 0:
            self._tokens.hit(rule.tokens, principal.name, cost=used)

    def _token_wait(self, item: _PerMinute, name: str, cost: int) -> float:
        window = item.get_expiry()
        previous, _, current, current_ttl = self._storage.get_sliding_window(
            item.key_for(name), window
        )
        # The storage reports the current counter's TTL as the rest of this window plus
        # one more (it lives on as the next window's "previous").
        left = max(0.0, current_ttl - window)
        wait = sliding_wait(previous, current, left, window, item.amount - cost)
        return max(wait, 0.001)
