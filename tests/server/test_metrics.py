"""`Metrics`: events and observations in, a Prometheus page out."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st
from prometheus_client import REGISTRY
from prometheus_client.parser import text_string_to_metric_families

from bastion.observability.events import (
    AttemptFinished,
    DegradedAnswer,
    FailedOver,
    HedgeStarted,
    HedgeWon,
    PanicMode,
    RequestFinished,
    RetryScheduled,
    StreamSeam,
)
from bastion.observability.metrics import MAX_MODEL_LABELS, OTHER_MODEL, Metrics
from bastion.resilience.breaker import BreakerState, BreakerTransition
from bastion.resilience.outlier import Ejected
from bastion.routing.status import EndpointStatus

# A sample's name and its labels.
Key = tuple[str, frozenset[tuple[str, str]]]


def samples(metrics: Metrics, **endpoints: EndpointStatus) -> dict[Key, float]:
    page = metrics.render(endpoints.values()).decode()
    return {
        (s.name, frozenset(s.labels.items())): s.value
        for family in text_string_to_metric_families(page)
        for s in family.samples
    }


def value(metrics: Metrics, name: str, **labels: str) -> float | None:
    return samples(metrics).get((name, frozenset(labels.items())))


def status(endpoint: str, breaker: BreakerState, *, in_flight: int = 0) -> EndpointStatus:
    return EndpointStatus(
        id=endpoint,
        model="m",
        provider="openai",
        breaker=breaker,
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


def test_each_instance_has_its_own_registry() -> None:
    one, other = Metrics(), Metrics()
    one.observe_request("chat", "ok", False, 0.1, 0.0001)
    assert value(one, "bastion_requests_total", model="chat", outcome="ok", stream="false") == 1
    assert (
        value(other, "bastion_requests_total", model="chat", outcome="ok", stream="false") is None
    )
    assert REGISTRY.get_sample_value("bastion_requests_total") is None


def test_attempts_count_by_outcome_with_duration_and_ttft() -> None:
    metrics = Metrics()
    metrics(AttemptFinished("r1", "primary", "m", "server_error", 500, 0.2))
    metrics(AttemptFinished("r1", "secondary", "m", None, None, 0.4, ttft=0.05))
    assert value(metrics, "bastion_attempts_total", endpoint="primary", outcome="server_error") == 1
    assert value(metrics, "bastion_attempts_total", endpoint="secondary", outcome="ok") == 1
    assert value(metrics, "bastion_attempt_duration_seconds_sum", endpoint="secondary") == 0.4
    assert value(metrics, "bastion_time_to_first_token_seconds_count", endpoint="secondary") == 1
    assert value(metrics, "bastion_time_to_first_token_seconds_count", endpoint="primary") is None


def test_every_counted_event_has_its_counter() -> None:
    metrics = Metrics()
    for event in (
        RetryScheduled("r", "primary", "rate_limited", 1, 0.5),
        FailedOver("r", "primary", "timeout", "fail over"),
        StreamSeam("r", "primary", "secondary", 40, "prefill"),
        HedgeStarted("r", "primary", "secondary", 0.3),
        HedgeWon("r", "secondary", "primary"),
        Ejected("chat", "primary", 1.0, 31.0, "5 consecutive errors"),
        DegradedAnswer("r", "chat"),
        PanicMode("r", ("primary", "secondary")),
        BreakerTransition("primary", BreakerState.CLOSED, BreakerState.OPEN, 1.0, "x", 10.0),
    ):
        metrics(event)
    found = samples(metrics)
    for name, labels in [
        ("bastion_retries_total", {"endpoint": "primary", "kind": "rate_limited"}),
        ("bastion_failovers_total", {"endpoint": "primary", "kind": "timeout"}),
        (
            "bastion_stream_seams_total",
            {"from_endpoint": "primary", "to_endpoint": "secondary", "mode": "prefill"},
        ),
        ("bastion_hedges_total", {"outcome": "started"}),
        ("bastion_hedges_total", {"outcome": "won"}),
        ("bastion_ejections_total", {"endpoint": "primary"}),
        ("bastion_degraded_total", {"group": "chat"}),
        ("bastion_panic_total", {}),
        ("bastion_breaker_transitions_total", {"endpoint": "primary", "state": "open"}),
    ]:
        assert found.get((name, frozenset(labels.items()))) == 1, name


def test_a_failover_refused_before_any_error_is_counted_as_unavailable() -> None:
    metrics = Metrics()
    metrics(FailedOver("r", "primary", "", "breaker open"))
    assert value(metrics, "bastion_failovers_total", endpoint="primary", kind="unavailable") == 1


def test_events_with_nothing_to_count_change_nothing() -> None:
    metrics = Metrics()
    before = samples(metrics)
    metrics(RequestFinished("r", "primary", True, 1, 0.1, False))
    assert samples(metrics) == before


def test_endpoint_gauges_come_from_the_status_handed_to_render() -> None:
    metrics = Metrics()
    found = samples(
        metrics,
        a=status("a", BreakerState.CLOSED, in_flight=3),
        b=status("b", BreakerState.HALF_OPEN),
        c=status("c", BreakerState.OPEN),
    )
    breaker = {
        dict(labels)["endpoint"]: v
        for (n, labels), v in found.items()
        if n == "bastion_breaker_state"
    }
    assert breaker == {"a": 0, "b": 1, "c": 2}
    assert found[("bastion_endpoint_in_flight", frozenset({("endpoint", "a")}))] == 3
    assert found[("bastion_endpoint_in_service", frozenset({("endpoint", "c")}))] == 0
    assert found[("bastion_endpoint_healthy", frozenset({("endpoint", "a")}))] == 1


def test_endpoint_gauges_are_absent_rather_than_stale_without_a_status() -> None:
    metrics = Metrics()
    samples(metrics, a=status("a", BreakerState.OPEN))
    assert value(metrics, "bastion_breaker_state", endpoint="a") is None


def test_overhead_is_measured_down_to_50_microseconds() -> None:
    metrics = Metrics()
    metrics.observe_request("chat", "ok", True, 1.0, 0.00004)
    metrics.observe_request("chat", "ok", True, 1.0, 0.0002)
    assert value(metrics, "bastion_overhead_seconds_bucket", le="5e-05") == 1
    assert value(metrics, "bastion_overhead_seconds_count") == 2
    assert (
        value(metrics, "bastion_request_duration_seconds_count", model="chat", stream="true") == 2
    )


def test_a_request_with_unknown_overhead_is_counted_without_it() -> None:
    metrics = Metrics()
    metrics.observe_request("chat", "error", False, 0.5, None)
    assert value(metrics, "bastion_requests_total", model="chat", outcome="error", stream="false")
    assert value(metrics, "bastion_overhead_seconds_count") == 0


def test_client_invented_model_names_cannot_grow_the_page_without_bound() -> None:
    metrics = Metrics()
    for i in range(MAX_MODEL_LABELS + 10):
        metrics.observe_request(f"model-{i}", "error", False, 0.01, None)
    found = samples(metrics)
    models = {
        dict(labels)["model"] for (n, labels), _ in found.items() if n == "bastion_requests_total"
    }
    assert len(models) == MAX_MODEL_LABELS + 1
    key = frozenset({("model", OTHER_MODEL), ("outcome", "error"), ("stream", "false")})
    assert found[("bastion_requests_total", key)] == 10


def test_stream_timings_are_observed_per_model_and_endpoint() -> None:
    metrics = Metrics()
    metrics.observe_first_token("chat", 0.3)
    metrics.observe_inter_token("primary", 0.02)
    metrics.observe_inter_token("primary", 0.03)
    assert value(metrics, "bastion_request_time_to_first_token_seconds_count", model="chat") == 1
    assert value(metrics, "bastion_inter_token_seconds_count", endpoint="primary") == 2


def test_tokens_reported_by_upstreams_are_counted_per_endpoint() -> None:
    metrics = Metrics()
    metrics(AttemptFinished("r1", "a", "m", None, None, 0.1, input_tokens=12, output_tokens=30))
    metrics(AttemptFinished("r2", "a", "m", None, None, 0.1, input_tokens=3, output_tokens=4))
    metrics(AttemptFinished("r3", "b", "m", "server_error", 500, 0.1))
    assert value(metrics, "bastion_tokens_total", endpoint="a", type="input") == 15
    assert value(metrics, "bastion_tokens_total", endpoint="a", type="output") == 34
    assert value(metrics, "bastion_tokens_total", endpoint="b", type="input") is None


@given(st.lists(st.text(min_size=1, max_size=20), max_size=50))
def test_with_a_config_to_ask_only_names_it_knows_get_a_label(names: list[str]) -> None:
    known = {"chat", "primary"}
    metrics = Metrics(known_model=known.__contains__)
    for name in [*names, "chat"]:
        metrics.observe_request(name, "ok", False, 0.01, None)
        metrics.observe_first_token(name, 0.01)
    labels = {dict(labels)["model"] for (_, labels) in samples(metrics) if "model" in dict(labels)}
    assert labels <= known | {OTHER_MODEL}
    assert "chat" in labels
    assert (OTHER_MODEL in labels) == any(n not in known for n in names)
