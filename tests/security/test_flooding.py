"""Clients choose the model names they send; they must not choose how big `/metrics`
gets. Invented names share one label; the page's size stays bounded."""

from __future__ import annotations

import httpx
from gateway_support import QUESTION, GatewayProcess, Keys, bearer

INVENTED = 600


def _series(gateway: GatewayProcess, keys: Keys) -> set[str]:
    page = httpx.get(f"{gateway.url}/api/v1/metrics", headers=bearer(keys.admin), timeout=5)
    assert page.status_code == 200
    return {
        line.rsplit(" ", 1)[0]
        for line in page.text.splitlines()
        if line and not line.startswith("#")
    }


def test_invented_model_names_do_not_grow_the_metrics_page(
    gateway: GatewayProcess, keys: Keys
) -> None:
    # One request with an invented name first, so that the shared bucket exists.
    with httpx.Client(base_url=gateway.url, headers=bearer(keys.admin), timeout=10) as client:
        client.post("/v1/chat/completions", json={"model": "warm-up", "messages": QUESTION})
        before = _series(gateway, keys)
        for index in range(INVENTED):
            response = client.post(
                "/v1/chat/completions",
                json={"model": f"invented-{index}-{'x' * 40}", "messages": QUESTION},
            )
            assert response.status_code == 404
    after = _series(gateway, keys)
    grown = {s for s in after - before if "invented" in s}
    assert grown == set()
    # Counters of the shared bucket move; the set of series barely does.
    assert len(after) - len(before) < 10


def test_invented_agent_names_do_not_grow_the_metrics_page(
    gateway: GatewayProcess, keys: Keys
) -> None:
    with httpx.Client(base_url=gateway.url, headers=bearer(keys.admin), timeout=10) as client:
        client.post("/api/v1/agents/warm-up/generate", json={"prompt": "hi"})
        before = _series(gateway, keys)
        for index in range(200):
            client.post(f"/api/v1/agents/invented-{index}/generate", json={"prompt": "hi"})
    after = _series(gateway, keys)
    assert {s for s in after - before if "invented" in s} == set()
