"""Every value has bounds that say what it means: durations are finite and at most a day
(ten years for how long data is kept), counts are integers in their range, flags are
true or false. Whatever is out of range is a `ConfigError` naming the field, and
never an exception of another kind."""

from __future__ import annotations

import copy
import math
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bastion.config import ConfigError, load_config

DAY = 86400
Path = tuple[str | int, ...]

VALID: dict[str, Any] = {
    "endpoints": [{"id": "a", "provider": "scripted", "model": "m", "health": {}, "timeouts": {}}],
    "models": {"g": {"targets": [{"model": "a", "retries": 0}], "hedge": {}}},
    "agents": {"s": {"instructions": "x", "model": "g"}},
    "auth": {"keys": [{"key": "${T_KEY:-key-0123456789}", "name": "k"}]},
    "retry": {"server_error": {}},
    "breaker": {},
    "budget": {},
    "outlier": {},
    "first_token": {},
    "memory": {},
    "server": {},
}

# (where, low, high): durations in seconds; a low of 0 may be 0 only if `zero`.
DURATIONS: list[tuple[Path, bool, float]] = [
    (("deadline",), False, DAY),
    (("endpoints", 0, "timeouts", "connect"), False, DAY),
    (("endpoints", 0, "health", "interval"), False, DAY),
    (("breaker", "open_for"), False, DAY),
    (("outlier", "probe_after"), True, DAY),
    (("memory", "lease_ttl"), False, DAY),
    (("memory", "retention"), False, 3650 * DAY),
    (("server", "drain_timeout"), True, DAY),
    (("retry", "server_error", "base"), True, DAY),
    (("breaker", "window"), False, DAY),
    (("models", "g", "hedge", "max_delay"), True, DAY),
]
COUNTS: list[tuple[Path, int, int]] = [
    (("retry", "server_error", "retries"), 0, 100),
    (("models", "g", "targets", 0, "retries"), 0, 100),
    (("breaker", "consecutive_failures"), 1, 1_000_000),
    (("breaker", "half_open_probes"), 1, 1000),
    (("budget", "min_retries"), 0, 1_000_000),
    (("endpoints", 0, "context_window"), 1, 1_000_000_000),
    (("endpoints", 0, "max_concurrency"), 1, 1_000_000),
    (("endpoints", 0, "health", "healthy_after"), 1, 1000),
    (("server", "port"), 0, 65535),
    (("auth", "keys", 0, "requests_per_minute"), 1, 1_000_000_000),
    (("agents", "s", "max_steps"), 1, 100),
    (("memory", "last_n"), 0, 10_000),
    (("outlier", "consecutive_errors"), 1, 1_000_000),
]
FLAGS: list[Path] = [
    ("auth", "keys", 0, "admin"),
    ("health_checks",),
    ("failover_first",),
    ("agents", "s", "memory"),
    ("retry", "server_error", "failover"),
    ("server", "log_requests"),
    ("models", "g", "failover_on_content_filter"),
]
# (where, low, whether low itself is allowed, high)
FLOATS: list[tuple[Path, float, bool, float]] = [
    (("endpoints", 0, "weight"), 0, True, 1_000_000),
    (("breaker", "backoff"), 1, True, 100),
    (("budget", "ratio"), 0, True, 100),
    (("models", "g", "hedge", "multiplier"), 0, False, 100),
]

NOT_FINITE = st.sampled_from([math.inf, -math.inf, math.nan])
HUGE = st.integers(min_value=10**20, max_value=10**400)


def dotted(where: Path) -> str:
    """("endpoints", 0, "weight") as the config's errors name it: endpoints[0].weight."""
    return "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in where).lstrip(".")


def with_value(where: Path, value: Any) -> str:
    config = copy.deepcopy(VALID)
    node: Any = config
    for part in where[:-1]:
        node = node[part]
    node[where[-1]] = value
    return yaml.safe_dump(config)


def refused(where: Path, value: Any) -> None:
    with pytest.raises(ConfigError) as caught:
        load_config(with_value(where, value))
    assert caught.value.field == dotted(where), str(caught.value)
    assert dotted(where) in str(caught.value)


def bad_duration(zero: bool, high: float) -> st.SearchStrategy[Any]:
    return st.one_of(
        NOT_FINITE,
        st.floats(max_value=0, exclude_max=zero, allow_nan=False),
        st.floats(min_value=high, exclude_min=True),
        st.integers(min_value=int(high) + 1),
        HUGE,
        st.integers(min_value=int(high // 3600) + 1, max_value=10**9).map(lambda h: f"{h}h"),
        st.sampled_from(["soon", "-5s", "1x", "", "1e3s", "inf", "nan", True, False]),
    )


def bad_count(low: int, high: int) -> st.SearchStrategy[Any]:
    return st.one_of(
        st.integers(max_value=low - 1),
        st.integers(min_value=high + 1),
        HUGE,
        st.floats(),  # a count is never a float, not even 2.0
        st.booleans(),
        st.integers(low, high).map(str),
    )


BAD_FLAG = st.one_of(
    st.sampled_from(["yes", "no", "true", "false", "on", "off", "1", "0"]),
    st.integers(),
    st.floats(),
)


def bad_float(low: float, low_ok: bool, high: float) -> st.SearchStrategy[Any]:
    return st.one_of(
        NOT_FINITE,
        st.floats(max_value=low, exclude_max=low_ok, allow_nan=False),
        st.floats(min_value=high, exclude_min=True),
        HUGE,
    )


SETTINGS = settings(max_examples=30, suppress_health_check=[HealthCheck.too_slow], deadline=None)


@pytest.mark.parametrize(("where", "zero", "high"), DURATIONS, ids=lambda v: str(v))
@SETTINGS
@given(data=st.data())
def test_an_out_of_range_duration_names_its_field(where, zero, high, data) -> None:
    refused(where, data.draw(bad_duration(zero, high)))


@pytest.mark.parametrize(("where", "low", "high"), COUNTS, ids=lambda v: str(v))
@SETTINGS
@given(data=st.data())
def test_an_out_of_range_count_names_its_field(where, low, high, data) -> None:
    refused(where, data.draw(bad_count(low, high)))


@pytest.mark.parametrize("where", FLAGS, ids=str)
@SETTINGS
@given(value=BAD_FLAG)
def test_a_flag_is_true_or_false_only(where, value) -> None:
    refused(where, value)


@pytest.mark.parametrize(("where", "low", "low_ok", "high"), FLOATS, ids=lambda v: str(v))
@SETTINGS
@given(data=st.data())
def test_an_out_of_range_number_names_its_field(where, low, low_ok, high, data) -> None:
    refused(where, data.draw(bad_float(low, low_ok, high)))


def test_the_bounds_themselves_are_accepted() -> None:
    for where, zero, high in DURATIONS:
        for value in (0 if zero else 0.001, high, "1h"):
            load_config(with_value(where, value))
    for where, low, high in COUNTS:
        for value in (low, high):
            load_config(with_value(where, value))
    for where in FLAGS:
        for value in (True, False):
            load_config(with_value(where, value))
    for where, low, low_ok, high in FLOATS:
        for value in (low if low_ok else low + 0.001, high):
            load_config(with_value(where, value))
    assert load_config(with_value(("memory", "retention"), "90d")).memory.retention == 90 * DAY
