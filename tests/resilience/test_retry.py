"""RetryPolicy: the per-kind table of DESIGN §4, backoff, Retry-After, deadline, overrides."""

from __future__ import annotations

import random

import pytest

from bastion.resilience.errors import Classification, ErrorKind
from bastion.resilience.retry import (
    DEFAULT_KIND_POLICIES,
    Action,
    Decision,
    FailureInfo,
    KindPolicy,
    RetryPolicy,
    full_jitter,
)


def failure(
    kind: ErrorKind, retries_so_far: int = 0, *, retry_after: float | None = None
) -> FailureInfo:
    return FailureInfo(Classification(kind, retry_after=retry_after), retries_so_far, "ep-1")


def decide(
    policy: RetryPolicy, info: FailureInfo, *, remaining: float | None = None, seed: int = 7
) -> Decision:
    return policy.decide(info, remaining=remaining, rng=random.Random(seed))


def retries_until_give_up(policy: RetryPolicy, kind: ErrorKind) -> tuple[int, Action]:
    done = 0
    while (decision := decide(policy, failure(kind, done))).action is Action.RETRY:
        done += 1
    return done, decision.action


@pytest.mark.parametrize(
    ("kind", "retries", "then"),
    [
        (ErrorKind.CONNECTION, 0, Action.FAILOVER),
        (ErrorKind.TIMEOUT, 0, Action.FAILOVER),
        (ErrorKind.RATE_LIMITED, 5, Action.FAILOVER),
        (ErrorKind.QUOTA_EXCEEDED, 0, Action.FAILOVER),
        (ErrorKind.UNAVAILABLE, 1, Action.FAILOVER),
        (ErrorKind.SERVER_ERROR, 2, Action.FAILOVER),
        (ErrorKind.PROTOCOL, 0, Action.FAILOVER),
        (ErrorKind.CONTEXT_LENGTH, 0, Action.FAILOVER),
        (ErrorKind.CONTENT_FILTER, 0, Action.RETURN),
        (ErrorKind.INVALID_REQUEST, 0, Action.RETURN),
        (ErrorKind.AUTH, 0, Action.FAILOVER),
        (ErrorKind.FORBIDDEN, 0, Action.FAILOVER),
        (ErrorKind.NOT_FOUND, 0, Action.FAILOVER),
        (ErrorKind.PREFILL_REJECTED, 0, Action.FAILOVER),
        (ErrorKind.UNKNOWN, 0, Action.FAILOVER),
    ],
)
def test_default_policy_follows_design_section_4(
    kind: ErrorKind, retries: int, then: Action
) -> None:
    assert retries_until_give_up(RetryPolicy(), kind) == (retries, then)


def test_every_kind_has_a_default() -> None:
    assert set(DEFAULT_KIND_POLICIES) == set(ErrorKind)


@pytest.mark.parametrize(
    ("kind", "base", "cap"),
    [
        (ErrorKind.RATE_LIMITED, 1.0, 16.0),
        (ErrorKind.SERVER_ERROR, 0.2, 0.4),
        (ErrorKind.UNAVAILABLE, 0.5, 1.0),
    ],
)
def test_default_backoff_stays_within_base_doubling_and_cap(
    kind: ErrorKind, base: float, cap: float
) -> None:
    policy = RetryPolicy()
    for attempt in range(policy.policy_for(kind).retries):
        for seed in range(50):
            delay = decide(policy, failure(kind, attempt), seed=seed).delay
            assert 0.0 <= delay <= min(cap, base * 2**attempt)


def test_full_jitter_stays_within_zero_and_the_exponential_ceiling() -> None:
    rng = random.Random(1)
    for attempt in range(8):
        ceiling = min(16.0, 1.0 * 2**attempt)
        delays = [full_jitter(attempt, 1.0, 16.0, rng) for _ in range(200)]
        assert all(0.0 <= d <= ceiling for d in delays)
        # Full jitter uses the whole interval, not just its top.
        assert min(delays) < ceiling * 0.1 and max(delays) > ceiling * 0.9


def test_full_jitter_is_reproducible_with_a_seeded_rng() -> None:
    first = [full_jitter(a, 0.5, 8.0, random.Random(42)) for a in range(5)]
    second = [full_jitter(a, 0.5, 8.0, random.Random(42)) for a in range(5)]
    assert first == second


def test_full_jitter_with_a_huge_attempt_is_capped_not_overflowing() -> None:
    assert 0.0 <= full_jitter(10_000, 1.0, 16.0, random.Random(0)) <= 16.0


def test_full_jitter_with_zero_base_is_zero() -> None:
    assert full_jitter(3, 0.0, 10.0, random.Random(0)) == 0.0


def test_retry_after_is_honoured_instead_of_backoff() -> None:
    decision = decide(RetryPolicy(), failure(ErrorKind.RATE_LIMITED, retry_after=3.0))
    assert decision.action is Action.RETRY
    assert decision.delay == 3.0
    assert "retry-after" in decision.reason


def test_retry_after_above_cap_fails_over_at_once() -> None:
    decision = decide(RetryPolicy(), failure(ErrorKind.RATE_LIMITED, retry_after=60.0))
    assert decision.action is Action.FAILOVER
    assert decision.delay == 0.0
    assert "exceeds" in decision.reason and "16s" in decision.reason


def test_retry_after_that_is_nan_gives_up_rather_than_waits() -> None:
    decision = decide(RetryPolicy(), failure(ErrorKind.RATE_LIMITED, retry_after=float("nan")))
    assert decision.action is Action.FAILOVER


def test_delay_past_the_deadline_fails_over() -> None:
    decision = decide(
        RetryPolicy(), failure(ErrorKind.RATE_LIMITED, retry_after=3.0), remaining=2.0
    )
    assert decision == Decision(Action.FAILOVER, 0.0, "deadline")


def test_delay_within_the_deadline_retries() -> None:
    decision = decide(
        RetryPolicy(), failure(ErrorKind.RATE_LIMITED, retry_after=1.0), remaining=2.0
    )
    assert decision.action is Action.RETRY


def test_deadline_returns_the_error_when_the_kind_does_not_fail_over() -> None:
    policy = RetryPolicy().override({"invalid_request": {"retries": 1, "base": 1.0, "max": 1.0}})
    decision = decide(policy, failure(ErrorKind.INVALID_REQUEST, retry_after=0.5), remaining=0.1)
    assert decision == Decision(Action.RETURN, 0.0, "deadline")


def test_content_filter_is_returned_by_default() -> None:
    assert decide(RetryPolicy(), failure(ErrorKind.CONTENT_FILTER)).action is Action.RETURN


def test_content_filter_fails_over_when_overridden() -> None:
    policy = RetryPolicy().override({ErrorKind.CONTENT_FILTER: {"failover": True}})
    assert decide(policy, failure(ErrorKind.CONTENT_FILTER)).action is Action.FAILOVER


def test_invalid_request_is_returned() -> None:
    decision = decide(RetryPolicy(), failure(ErrorKind.INVALID_REQUEST))
    assert decision.action is Action.RETURN
    assert decision.reason == "invalid_request: not retried"


def test_override_updates_only_the_given_fields() -> None:
    policy = RetryPolicy().override({"rate_limited": {"retries": 2}})
    assert policy.policy_for(ErrorKind.RATE_LIMITED) == KindPolicy(
        retries=2, base=1.0, max=16.0, retry_after_cap=16.0
    )
    assert (
        policy.policy_for(ErrorKind.SERVER_ERROR) == DEFAULT_KIND_POLICIES[ErrorKind.SERVER_ERROR]
    )


def test_override_with_a_kind_policy_replaces_the_kind() -> None:
    policy = RetryPolicy().override({ErrorKind.TIMEOUT: KindPolicy(retries=1, base=0.1, max=0.1)})
    assert retries_until_give_up(policy, ErrorKind.TIMEOUT) == (1, Action.FAILOVER)


def test_override_leaves_the_original_policy_unchanged() -> None:
    original = RetryPolicy()
    original.override({"timeout": {"retries": 3}})
    assert original.policy_for(ErrorKind.TIMEOUT).retries == 0


@pytest.mark.parametrize(
    ("overrides", "words"),
    [
        ({"rate_limited": {"retries": -1}}, ["rate_limited", "retries", "-1"]),
        ({"rate_limited": {"retries": 2.5}}, ["rate_limited", "retries", "integer"]),
        ({"server_error": {"base": "1s"}}, ["server_error", "base", "'1s'"]),
        ({"server_error": {"max": float("inf")}}, ["server_error", "max", "finite"]),
        ({"timeout": {"failover": "yes"}}, ["timeout", "failover"]),
        ({"timeout": {"attempts": 3}}, ["timeout", "unknown field attempts", "retries"]),
        ({"rate_limit": {"retries": 1}}, ["unknown error kind 'rate_limit'", "rate_limited"]),
    ],
    ids=[
        "negative",
        "not an integer",
        "not a number",
        "infinite",
        "not a bool",
        "unknown field",
        "unknown kind",
    ],
)
def test_override_validation_error_names_the_kind_and_field(
    overrides: dict[str, dict[str, object]], words: list[str]
) -> None:
    with pytest.raises(ValueError) as caught:
        RetryPolicy().override(overrides)
    for word in words:
        assert word in str(caught.value)


def test_override_with_neither_policy_nor_mapping_is_a_type_error() -> None:
    with pytest.raises(TypeError, match="timeout"):
        RetryPolicy().override({"timeout": 3})  # type: ignore[dict-item]


def test_custom_callable_is_consulted_first() -> None:
    seen: list[FailureInfo] = []

    def custom(info: FailureInfo) -> Decision | None:
        seen.append(info)
        return Decision(Action.RETRY, 0.25, "custom")

    info = failure(ErrorKind.INVALID_REQUEST)
    decision = decide(RetryPolicy(custom=custom), info)
    assert decision == Decision(Action.RETRY, 0.25, "custom")
    assert seen == [info]


def test_custom_callable_returning_none_falls_back_to_the_table() -> None:
    policy = RetryPolicy(custom=lambda info: None)
    assert decide(policy, failure(ErrorKind.CONTENT_FILTER)).action is Action.RETURN


def test_custom_retry_is_still_bounded_by_the_deadline() -> None:
    policy = RetryPolicy(custom=lambda info: Decision(Action.RETRY, 5.0, "custom"))
    decision = decide(policy, failure(ErrorKind.SERVER_ERROR), remaining=1.0)
    assert decision == Decision(Action.FAILOVER, 0.0, "deadline")


def test_kind_missing_from_the_table_follows_unknown() -> None:
    policy = RetryPolicy(kinds={ErrorKind.UNKNOWN: KindPolicy(failover=False)})
    assert decide(policy, failure(ErrorKind.SERVER_ERROR)).action is Action.RETURN


def test_policy_does_not_change_when_the_callers_dict_does() -> None:
    kinds = {ErrorKind.UNKNOWN: KindPolicy()}
    policy = RetryPolicy(kinds=kinds)
    kinds[ErrorKind.UNKNOWN] = KindPolicy(failover=False)
    assert policy.policy_for(ErrorKind.UNKNOWN).failover is True


def test_decision_rejects_a_negative_delay() -> None:
    with pytest.raises(ValueError, match="delay"):
        Decision(Action.RETRY, -1.0)
