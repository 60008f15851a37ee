"""Example tools for agents: what the README's agent and the tests use.

    agents:
      support:
        instructions: You help {tier} customers with their orders.
        model: chat
        tools: [bastion.demo.tools:lookup_order, bastion.demo.tools:get_time]

Offline and deterministic: orders come from a small table, so an answer that quotes a
tool's result can be checked.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from bastion.agents import ToolError, tool
from bastion.types import RuntimeContext

ORDERS: dict[str, dict[str, Any]] = {
    "42": {"status": "shipped", "carrier": "DHL", "eta_days": 2},
    "43": {"status": "processing", "carrier": None, "eta_days": 5},
    "44": {"status": "delivered", "carrier": "UPS", "eta_days": 0},
}


@tool(timeout=5.0)
def lookup_order(order_id: str) -> dict[str, Any]:
    """Look up an order's status, carrier and expected delivery.

    Args:
        order_id: The order number, e.g. "42".
    """
    order = ORDERS.get(order_id.strip().lstrip("#"))
    if order is None:
        raise ToolError(f"no order {order_id!r}; known orders: {', '.join(ORDERS)}")
    return {"order_id": order_id, **order}


@tool(timeout=5.0)
def get_time(ctx: RuntimeContext) -> dict[str, str]:
    """The current date and time, in the caller's time zone (the runtime context's
    `timezone`, e.g. "Europe/Paris"; UTC when it has none)."""
    name = str(ctx.get("timezone") or "UTC")
    try:
        zone = ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise ToolError(f"unknown time zone {name!r}") from None
    return {"timezone": name, "time": datetime.now(UTC).astimezone(zone).isoformat()}
