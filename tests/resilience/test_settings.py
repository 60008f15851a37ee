"""Settings types: durations with units wherever a duration is taken, checks at build."""

from __future__ import annotations

import dataclasses

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bastion import HealthCheck, Hedge, Timeouts
from bastion.resilience import BreakerConfig, BudgetConfig, OutlierConfig

UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}


# Up to a day in each unit: every duration is at most that.
AMOUNTS = st.sampled_from(sorted(UNITS)).flatmap(
    lambda unit: st.tuples(st.integers(1, int(86400 / UNITS[unit])), st.just(unit))
)


@given(AMOUNTS)
def test_a_duration_string_means_the_same_seconds_in_every_settings_type(amount_unit):
    amount, unit = amount_unit
    text, seconds = f"{amount}{unit}", amount * UNITS[unit]
    built = (
        Timeouts(total=text).total,
        HealthCheck(interval=text).interval,
        BreakerConfig(window=text).window,
        OutlierConfig(base_ejection=text, max_ejection=86400).base_ejection,
        BudgetConfig(window=text).window,
        Hedge(initial=text).initial,
    )
    assert built == pytest.approx((seconds,) * len(built))


@pytest.mark.parametrize(
    ("build", "field"),
    [
        (lambda: Timeouts(total=0), "total"),
        (lambda: HealthCheck(healthy_after=0), "healthy_after"),
        (lambda: BudgetConfig(ratio=-1), "ratio"),
        (lambda: Hedge(multiplier=0), "multiplier"),
        (lambda: Timeouts(connect="soon"), "connect"),
    ],
)
def test_a_bad_value_is_refused_when_built_naming_the_field(build, field):
    with pytest.raises(ValueError, match=field):
        build()


def test_an_unknown_setting_is_refused():
    with pytest.raises(ValueError, match="open_fro"):
        BreakerConfig(open_fro=10)  # type: ignore[call-arg]


def test_settings_are_frozen():
    with pytest.raises(dataclasses.FrozenInstanceError):
        Timeouts().total = 1.0  # type: ignore[misc]
