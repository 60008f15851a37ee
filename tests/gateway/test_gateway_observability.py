"""What the server tells operators: the Prometheus page, the event stream, and logs
that never carry a secret."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator

import httpx
import pytest
from gateway_support import QUESTION, FleetProcess, GatewayProcess, Keys, bearer
from prometheus_client.parser import text_string_to_metric_families

CHAT = {"model": "chat", "messages": QUESTION}
Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def scrape(gateway: GatewayProcess, keys: Keys) -> Samples:
    response = httpx.get(f"{gateway.url}/api/v1/metrics", headers=bearer(keys.admin))
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(response.text)
        for sample in family.samples
    }


def grew(before: Samples, after: Samples, name: str, **labels: str) -> float:
    key = (name, frozenset(labels.items()))
    return after.get(key, 0.0) - before.get(key, 0.0)


def test_metrics_parse_and_count_a_failover(
    gateway: GatewayProcess, keys: Keys, fleet: FleetProcess
) -> None:
    before = scrape(gateway, keys)
    fleet.set_default("primary", {"kind": "status", "code": 503})
    answer = httpx.post(f"{gateway.url}/v1/chat/completions", json=CHAT, headers=bearer(keys.app))
    assert answer.status_code == 200
    after = scrape(gateway, keys)
    assert grew(before, after, "bastion_requests_total", model="chat", outcome="ok", stream="false")
    assert grew(before, after, "bastion_failovers_total", endpoint="primary", kind="unavailable")
    assert grew(before, after, "bastion_attempts_total", endpoint="secondary", outcome="ok") == 1
    assert after[("bastion_endpoint_in_service", frozenset({("endpoint", "primary")}))] == 1


@pytest.fixture
def events(gateway: GatewayProcess, keys: Keys) -> Iterator[Iterator[tuple[str, str]]]:
    """The gateway's event stream as (event, data) pairs, subscribed before it yields."""
    with httpx.stream(
        "GET", f"{gateway.url}/api/v1/events", headers=bearer(keys.admin), timeout=5
    ) as response:
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        lines = response.iter_lines()
        assert next(lines).startswith(":")  # the subscription is live

        def pairs() -> Iterator[tuple[str, str]]:
            name = ""
            for line in lines:
                if line.startswith("event: "):
                    name = line.removeprefix("event: ")
                elif line.startswith("data: "):
                    yield name, line.removeprefix("data: ")

        yield pairs()


def test_events_stream_tells_of_a_failover(
    events: Iterator[tuple[str, str]], gateway: GatewayProcess, keys: Keys, fleet: FleetProcess
) -> None:
    fleet.set_default("primary", {"kind": "reset"})
    answer = httpx.post(f"{gateway.url}/v1/chat/completions", json=CHAT, headers=bearer(keys.app))
    assert answer.status_code == 200
    deadline = time.monotonic() + 3
    for name, data in events:
        if name == "failed_over":
            assert json.loads(data)["endpoint"] == "primary"
            break
        assert time.monotonic() < deadline, "no failed_over event"


def test_no_secret_reaches_a_log_or_a_response_even_after_errors(
    gateway: GatewayProcess, keys: Keys, fleet: FleetProcess
) -> None:
    url = f"{gateway.url}/v1/chat/completions"
    wrong_keys = (
        {},
        bearer("not-a-key"),
        bearer(keys.admin[:-1]),  # one character short of a real key
        {"x-api-key": keys.app + "x"},
        bearer(keys.other),  # a real key without the scope
    )
    bodies = [httpx.post(url, json=CHAT, headers=headers).text for headers in wrong_keys]
    # The upstreams refuse the gateway's api_key: every attempt fails with 401.
    for name in ("primary", "secondary"):
        fleet.set_default(name, {"kind": "status", "code": 401})
    refused = httpx.post(url, json=CHAT, headers=bearer(keys.app))
    assert refused.status_code == 502
    bodies.append(refused.text)
    # A body the parser does not expect: an error, whatever its status.
    odd = {"model": "chat", "messages": [{"role": {}, "content": ""}]}
    bodies.append(httpx.post(url, json=odd, headers=bearer(keys.app)).text)
    logs = gateway.logs()
    for secret in keys.values():
        assert secret not in logs, "a secret was written to the server log"
        assert not any(secret in body for body in bodies), "a secret was sent to a client"
