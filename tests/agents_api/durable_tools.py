"""A tool for the durable-run tests, imported by the `bastion serve` under test: each
execution appends one line (its note and idempotency key) to the file named by
$BASTION_TEST_TOOL_LOG, so that the test can count how often it really ran."""

from __future__ import annotations

import os

from bastion.agents import ToolContext, tool


@tool
def record(note: str, ctx: ToolContext) -> str:
    """Record a note."""
    with open(os.environ["BASTION_TEST_TOOL_LOG"], "a", encoding="utf-8") as log:
        log.write(f"{note} {ctx.idempotency_key}\n")
    return f"recorded {note}"
