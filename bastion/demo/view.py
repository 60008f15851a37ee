"""The demo's live terminal view and its closing summary (rich)."""

from __future__ import annotations

from collections import Counter

from rich.console import Group
from rich.panel import Panel
from rich.table import Table
from rich.text import Text

from bastion.demo.stats import DemoStats
from bastion.resilience.breaker import BreakerState
from bastion.routing import Router

_BREAKER_STYLE = {
    BreakerState.CLOSED: "green",
    BreakerState.HALF_OPEN: "yellow",
    BreakerState.OPEN: "bold red",
}


def _endpoints(stats: DemoStats, router: Router) -> Table:
    table = Table(title="endpoints", expand=True)
    for column in ("endpoint", "breaker", "health", "in service", "served", "recent share"):
        table.add_column(column)
    recent = Counter(stats.recent_served)
    window = max(1, len(stats.recent_served))
    for status in router.status():
        share = recent[status.id] / window
        table.add_row(
            status.id,
            Text(status.breaker.value, style=_BREAKER_STYLE[status.breaker]),
            Text("up" if status.healthy else "down", style="green" if status.healthy else "red"),
            "yes" if status.in_service else Text("no", style="red"),
            str(stats.served[status.id]),
            Text("█" * round(share * 20), style="cyan"),
        )
    return table


def render(stats: DemoStats, router: Router) -> Panel:
    rate = 100.0 * stats.ok / stats.total if stats.total else 100.0
    header = Text.assemble(
        ("phase: ", "bold"),
        (stats.current_phase, "magenta"),
        "\n",
        ("requests ", "bold"),
        f"{stats.total}  ",
        ("success ", "bold"),
        (f"{rate:.1f}%  ", "green" if stats.failed == 0 else "red"),
        f"retries {stats.retries}  failovers {stats.failovers}  "
        f"stream seams {stats.seams}  degraded {stats.degraded}",
    )
    log = Text("\n".join(stats.log), style="dim")
    return Panel(Group(header, _endpoints(stats, router), log), title="bastion demo")


def summary(stats: DemoStats, upstream_calls: Counter[str]) -> Panel:
    table = Table(show_header=False, box=None)
    table.add_column(style="bold")
    table.add_column()
    rate = 100.0 * stats.ok / stats.total if stats.total else 0.0
    rows = [
        ("requests", f"{stats.total} ({stats.streams} streamed)"),
        ("answered", f"{stats.ok} — {rate:.2f}% success, {stats.degraded} degraded"),
        ("failed", str(stats.failed)),
        ("served by", ", ".join(f"{k} {v}" for k, v in stats.served.most_common())),
        ("upstream calls", ", ".join(f"{k} {v}" for k, v in upstream_calls.most_common())),
        ("attempts per request", f"{stats.attempts / max(1, stats.total):.2f}"),
        ("retries / failovers", f"{stats.retries} / {stats.failovers}"),
        ("streams continued mid-answer", str(stats.seams)),
        (
            "latency p50 / p99",
            f"{stats.percentile(0.5) * 1000:.0f} ms / {stats.percentile(0.99) * 1000:.0f} ms",
        ),
        (
            "upstream errors",
            ", ".join(f"{k} {v}" for k, v in stats.upstream_errors.most_common()) or "none",
        ),
    ]
    for key, value in rows:
        table.add_row(key, value)
    return Panel(table, title="summary", border_style="green" if stats.failed == 0 else "red")
