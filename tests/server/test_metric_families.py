"""The lock-free counter and histogram families, read back through prometheus_client."""

from __future__ import annotations

import pytest
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from bastion.observability.families import CounterFamily, FamilyCollector, HistogramFamily


def page(
    *families: CounterFamily | HistogramFamily,
) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    registry = CollectorRegistry()
    registry.register(FamilyCollector(families))
    text = generate_latest(registry).decode()
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def test_a_value_on_a_bound_counts_in_that_bucket_and_buckets_are_cumulative() -> None:
    latency = HistogramFamily("lat_seconds", "Latency.", ("route",), (0.1, 1.0))
    child = latency.child("chat")
    for value in (0.05, 0.1, 0.5, 1.0, 7.0):
        child.observe(value)
    samples = page(latency)
    bucket = {
        le: samples[("lat_seconds_bucket", (("le", le), ("route", "chat")))]
        for le in ("0.1", "1.0", "+Inf")
    }
    assert bucket == {"0.1": 2.0, "1.0": 4.0, "+Inf": 5.0}
    assert samples[("lat_seconds_count", (("route", "chat"),))] == 5.0
    assert samples[("lat_seconds_sum", (("route", "chat"),))] == pytest.approx(8.65)


def test_counters_keep_one_value_per_label_tuple() -> None:
    requests = CounterFamily("req_total", "Requests.", ("model", "outcome"))
    requests.child("a", "ok").inc()
    requests.child("a", "ok").inc(2)
    requests.child("b", "error").inc()
    samples = page(requests)
    assert samples[("req_total", (("model", "a"), ("outcome", "ok")))] == 3.0
    assert samples[("req_total", (("model", "b"), ("outcome", "error")))] == 1.0


def test_an_unlabelled_family_shows_zero_before_any_update() -> None:
    panics = CounterFamily("panic_total", "Panics.")
    overhead = HistogramFamily("overhead_seconds", "Overhead.", (), (0.001,))
    samples = page(panics, overhead)
    assert samples[("panic_total", ())] == 0.0
    assert samples[("overhead_seconds_count", ())] == 0.0


def test_misuse_is_refused() -> None:
    with pytest.raises(ValueError, match="takes labels"):
        CounterFamily("x_total", "X.", ("a",)).child("1", "2")
    with pytest.raises(ValueError, match="only goes up"):
        CounterFamily("y_total", "Y.").child().inc(-1)
    with pytest.raises(ValueError, match="ascending"):
        HistogramFamily("z", "Z.", (), (1.0, 0.5))
