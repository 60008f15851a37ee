"""Clients cannot grow `/api/v1/metrics`: a model name the live config does not know is
counted under one `_other` label, however many names are invented; a name a reload adds
gets its own label from then on."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest
import yaml
from gateway_support import (
    QUESTION,
    FleetProcess,
    GatewayProcess,
    Keys,
    MakeGateway,
    bearer,
    gateway_config,
)
from prometheus_client.parser import text_string_to_metric_families

INVENTED = 1_000
# One label set of the request metrics: a counter per outcome and a histogram.
BOUND = 20


@pytest.fixture
def admin(make_gateway: MakeGateway, keys: Keys) -> Iterator[httpx.Client]:
    # A gateway of the test's own: the shared one's page holds other tests' series.
    server: GatewayProcess = make_gateway()
    with httpx.Client(base_url=server.url, headers=bearer(keys.admin), timeout=10) as client:
        yield client


def series(admin: httpx.Client) -> set[tuple[str, frozenset[tuple[str, str]]]]:
    response = admin.get("/api/v1/metrics")
    assert response.status_code == 200
    return {
        (sample.name, frozenset(sample.labels.items()))
        for family in text_string_to_metric_families(response.text)
        for sample in family.samples
    }


def model_labels(admin: httpx.Client) -> set[str]:
    return {dict(labels)["model"] for _, labels in series(admin) if "model" in dict(labels)}


def ask(admin: httpx.Client, model: str) -> int:
    body = {"model": model, "messages": QUESTION}
    return admin.post("/v1/chat/completions", json=body).status_code


def test_invented_model_names_do_not_grow_the_page(admin: httpx.Client) -> None:
    assert ask(admin, "chat") == 200
    before = series(admin)
    for i in range(INVENTED):
        assert ask(admin, f"invented-{i}") == 404
    after = series(admin)
    assert len(after) - len(before) <= BOUND
    assert model_labels(admin) == {"chat", "_other"}


def test_a_model_added_by_a_reload_gets_its_own_label(
    admin: httpx.Client, fleet: FleetProcess
) -> None:
    assert ask(admin, "fast") == 404
    groups = {"chat": {"targets": ["primary", "secondary"]}, "fast": {"targets": ["secondary"]}}
    response = admin.put(
        "/api/v1/config",
        content=yaml.safe_dump(gateway_config(fleet, models=groups)),
        headers={"Content-Type": "application/yaml"},
    )
    assert response.status_code == 200, response.text
    assert ask(admin, "fast") == 200
    assert model_labels(admin) == {"_other", "fast"}
