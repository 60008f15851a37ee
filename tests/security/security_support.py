"""What the probes compare: the gateway's visible state before and after an attack."""

from __future__ import annotations

from typing import Any

import httpx
import yaml
from gateway_support import GatewayProcess, Keys, bearer


def visible_state(gateway: GatewayProcess, keys: Keys) -> dict[str, Any]:
    """What an admin sees of the live config: endpoints with their targets and where
    the config came from, the model groups and the agents."""
    admin = bearer(keys.admin)
    status = httpx.get(f"{gateway.url}/api/v1/status", headers=admin, timeout=5).json()
    agents = httpx.get(f"{gateway.url}/api/v1/agents", headers=admin, timeout=5).json()
    return {
        "endpoints": sorted(e["id"] for e in status["endpoints"]),
        "models": status["models"],
        "origin": status["config"]["origin"],
        "agents": agents,
    }


def put_config(gateway: GatewayProcess, key: str, config: dict[str, Any]) -> httpx.Response:
    return httpx.put(
        f"{gateway.url}/api/v1/config",
        content=yaml.safe_dump(config, sort_keys=False),
        headers={**bearer(key), "Content-Type": "application/yaml"},
        timeout=10,
    )


def error_of(response: httpx.Response) -> dict[str, Any]:
    """The OpenAI-shaped error object of a refusal; fails if the body is not one."""
    body = response.json()
    assert set(body) == {"error"}, body
    error: dict[str, Any] = body["error"]
    assert {"message", "type", "code"} <= set(error), error
    return error
