"""First-token limits that follow each endpoint's observed time to first token."""

from __future__ import annotations

import random

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bastion import Endpoint, ModelGroup, Reply, Router, RouterOptions, ScriptedModel, chat
from bastion.models.base import Timeouts
from bastion.resilience.clock import FakeClock
from bastion.resilience.learned import AdaptiveFirstToken, FirstTokenLimit

ONE_ENDPOINT = {"id": "a", "provider": "scripted", "model": "m"}
CONFIG = AdaptiveFirstToken(
    quantile=0.9, factor=3.0, floor=0.5, ceiling=60.0, initial=30.0, min_samples=5
)


def test_the_initial_limit_holds_until_enough_samples_are_in():
    limit = FirstTokenLimit(CONFIG)
    for _ in range(4):
        limit.add(0.2)
    assert limit.value == 30.0
    limit.add(0.2)
    assert limit.value == pytest.approx(0.6)


def test_a_fast_endpoint_gets_a_short_limit_but_never_below_the_floor():
    limit = FirstTokenLimit(CONFIG)
    for _ in range(20):
        limit.add(0.01)
    assert limit.value == 0.5


def test_timeouts_at_the_limit_raise_it_until_a_slow_model_fits():
    limit = FirstTokenLimit(CONFIG)
    for _ in range(10):
        limit.add(0.2)
    first = limit.value
    for _ in range(CONFIG.window):  # every stream times out at the limit it had
        limit.add(limit.value)
    assert limit.value > 10 * first
    assert limit.value == CONFIG.ceiling


@given(st.lists(st.floats(min_value=0.0, max_value=1e4), min_size=1, max_size=300))
def test_the_limit_is_always_within_its_bounds(samples):
    limit = FirstTokenLimit(CONFIG)
    for sample in samples:
        limit.add(sample)
        assert CONFIG.floor <= limit.value <= max(CONFIG.ceiling, CONFIG.initial)


def build(models: dict[str, ScriptedModel], first_token: dict[str, float | None]) -> Router:
    endpoints = [
        (
            Endpoint(
                id=name,
                provider="scripted",
                model=name,
                timeouts=Timeouts(first_token=first_token.get(name)),
            ),
            model,
        )
        for name, model in models.items()
    ]
    options = RouterOptions(
        health_checks=False,
        first_token=AdaptiveFirstToken(floor=0.05, initial=30.0, min_samples=3),
    )
    return Router(
        endpoints,
        {"chat": ModelGroup.of(*models)},
        options=options,
        default_model="chat",
        clock=FakeClock(),
        rng=random.Random(1),
    )


async def test_a_silent_stream_is_left_after_the_learned_limit_not_the_initial_one():
    primary = ScriptedModel(["fast"] * 3 + [Reply("too late", delay=20.0)])
    backup = ScriptedModel(default="from backup")
    router = build({"primary": primary, "backup": backup}, {})
    for _ in range(3):
        assert (await router.stream(chat("x")).collect()).endpoint == "primary"
    answer = await router.stream(chat("x")).collect()  # would wait 30 s untaught
    assert answer.endpoint == "backup"
    assert [a.kind for a in answer.attempts] == ["timeout", None]


async def test_an_endpoints_own_first_token_limit_is_kept():
    primary = ScriptedModel(["fast"] * 3 + [Reply("slow but in time", delay=0.2)])
    router = build({"primary": primary, "backup": ScriptedModel(default="b")}, {"primary": 5.0})
    for _ in range(3):
        await router.stream(chat("x")).collect()
    answer = await router.stream(chat("x")).collect()
    assert (answer.endpoint, answer.text) == ("primary", "slow but in time")


def test_the_config_sets_the_learned_limit_with_durations():
    from bastion.routing.configure import load_router_config

    parts = load_router_config(
        {
            "endpoints": [ONE_ENDPOINT],
            "first_token": {"floor": "250ms", "ceiling": "3m", "quantile": 0.99},
        }
    )
    assert parts.options.first_token == AdaptiveFirstToken(floor=0.25, ceiling=180.0, quantile=0.99)


@pytest.mark.parametrize(
    ("section", "field"),
    [
        ({"quantile": 1.5}, "first_token.quantile"),
        ({"floor": "10s", "ceiling": "1s"}, "ceiling must be at least floor"),
        ({"window": 3, "min_samples": 5}, "window must be at least min_samples"),
        ({"factr": 2}, "first_token.factr"),
    ],
)
def test_a_bad_first_token_section_is_an_error_naming_the_field(section, field):
    from bastion.config import ConfigError
    from bastion.routing.configure import load_router_config

    with pytest.raises(ConfigError, match=field.replace(".", r"\.")):
        load_router_config(
            {
                "endpoints": [{"id": "a", "provider": "scripted", "model": "m"}],
                "first_token": section,
            }
        )
