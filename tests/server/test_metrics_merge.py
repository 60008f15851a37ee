"""One metrics page from several workers' (`workers.merge`): counters and histograms are
the sums over workers, gauges are kept per worker, and a worker that is gone leaves its
counts behind so that no sum goes backwards."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from prometheus_client.parser import text_string_to_metric_families

from bastion.observability.metrics import Metrics
from bastion.resilience.breaker import BreakerState
from bastion.routing.status import EndpointStatus
from bastion.server.workers.merge import MetricsMerge

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]

MODELS = st.sampled_from(["chat", "fast", "other"])
REQUEST = st.tuples(
    st.integers(min_value=0, max_value=2),  # the worker that served it
    MODELS,
    st.sampled_from(["ok", "error"]),
    st.booleans(),
    st.floats(min_value=0.0, max_value=400.0),
)


def samples(page: bytes, *types: str) -> Samples:
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(page.decode())
        if family.type in types
        for sample in family.samples
    }


@settings(deadline=None)  # parsing pages: slow on a loaded machine, and not timed
@given(st.lists(REQUEST, max_size=60))
def test_counters_and_histograms_are_the_sums_over_workers(
    requests: list[tuple[int, str, str, bool, float]],
) -> None:
    workers = [Metrics() for _ in range(3)]
    alone = Metrics()
    for worker, model, outcome, stream, seconds in requests:
        for metrics in (workers[worker], alone):
            metrics.observe_request(model, outcome, stream, seconds, None)
    merged = MetricsMerge().page({i: m.render() for i, m in enumerate(workers)})
    summed = ("counter", "histogram")
    # Sums of float seconds added in another order may differ in the last bit.
    assert samples(merged, *summed) == pytest.approx(samples(alone.render(), *summed))


def endpoint(name: str, in_flight: int) -> EndpointStatus:
    return EndpointStatus(
        id=name,
        model="m",
        provider="scripted",
        breaker=BreakerState.CLOSED,
        reopens_in=0.0,
        breaker_probes=0,
        ejected=False,
        healthy=True,
        isolated=False,
        in_flight=in_flight,
        served=0,
        failed=0,
        latency_ms=None,
        ttft_ms=None,
    )


def test_gauges_are_kept_per_worker() -> None:
    first, second = Metrics(), Metrics()
    merged = MetricsMerge().page(
        {0: first.render([endpoint("a", 3)]), 1: second.render([endpoint("a", 5)])}
    )
    gauges = samples(merged, "gauge")
    in_flight = "bastion_endpoint_in_flight"
    assert gauges[(in_flight, frozenset({("endpoint", "a"), ("worker", "0")}))] == 3
    assert gauges[(in_flight, frozenset({("endpoint", "a"), ("worker", "1")}))] == 5


def requests_total(page: bytes) -> float:
    return sum(
        value
        for (name, _), value in samples(page, "counter").items()
        if name == "bastion_requests_total"
    )


def test_a_worker_restarted_from_zero_does_not_take_its_counts_away() -> None:
    merge = MetricsMerge()
    first, second = Metrics(), Metrics()
    for _ in range(4):
        first.observe_request("chat", "ok", False, 0.1, None)
    second.observe_request("chat", "ok", False, 0.1, None)
    assert requests_total(merge.page({0: first.render(), 1: second.render()})) == 5
    merge.retire(0)  # worker 0 died; its successor counts from zero
    successor = Metrics()
    successor.observe_request("chat", "ok", False, 0.1, None)
    assert requests_total(merge.page({0: successor.render(), 1: second.render()})) == 6


def test_a_worker_that_does_not_answer_is_counted_as_last_seen() -> None:
    merge = MetricsMerge()
    first, second = Metrics(), Metrics()
    first.observe_request("chat", "ok", False, 0.1, None)
    second.observe_request("chat", "ok", False, 0.1, None)
    assert requests_total(merge.page({0: first.render(), 1: second.render()})) == 2
    assert requests_total(merge.page({0: first.render(), 1: None})) == 2


def test_pages_arriving_out_of_order_never_lower_a_count() -> None:
    merge = MetricsMerge()
    worker = Metrics()
    worker.observe_request("chat", "ok", False, 0.1, None)
    older = worker.render()
    worker.observe_request("chat", "ok", False, 0.1, None)
    assert requests_total(merge.page({0: worker.render()})) == 2
    assert requests_total(merge.page({0: older})) == 2
