"""Counter and histogram families for the per-request path, written out by prometheus_client.

prometheus_client's own `Counter` and `Histogram` serve threaded programs: every
increment takes a lock, a histogram walks its buckets one by one, and `labels()`
validates its arguments on each call. A gateway request updates five or six of them,
which measured ~1 µs each. Bastion updates its metrics from the event loop's thread
only, so a list of counts and a `bisect` are enough (~0.2 µs). The text page is still
prometheus_client's: `FamilyCollector` hands the values to it at scrape time.

    requests = CounterFamily("bastion_requests_total", "Requests.", ("model",))
    requests.child("chat").inc()
    latency = HistogramFamily("bastion_latency_seconds", "Latency.", (), (0.1, 1.0))
    latency.child().observe(0.25)
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Iterator, Sequence

from prometheus_client.metrics_core import CounterMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.registry import Collector
from prometheus_client.utils import floatToGoString


class CounterValue:
    """One labelled counter. Not thread-safe by design (see the module docstring)."""

    __slots__ = ("value",)

    def __init__(self) -> None:
        self.value = 0.0

    def inc(self, amount: float = 1.0) -> None:
        if amount < 0:
            raise ValueError("a counter only goes up")
        self.value += amount


class HistogramValue:
    """One labelled histogram: a count per bucket (the last is +Inf) and the sum."""

    __slots__ = ("bounds", "counts", "total")

    def __init__(self, bounds: tuple[float, ...]) -> None:
        self.bounds = bounds
        self.counts = [0] * (len(bounds) + 1)
        self.total = 0.0

    def observe(self, value: float) -> None:
        # bisect_left: a value equal to a bound belongs to that bound's bucket (le).
        self.counts[bisect_left(self.bounds, value)] += 1
        self.total += value


class _Family:
    __slots__ = ("_children", "documentation", "label_names", "name")

    def __init__(self, name: str, documentation: str, label_names: Sequence[str]) -> None:
        self.name = name
        self.documentation = documentation
        self.label_names = tuple(label_names)

    def _check(self, labels: tuple[str, ...]) -> None:
        if len(labels) != len(self.label_names):
            raise ValueError(
                f"{self.name} takes labels {self.label_names}, got {len(labels)} value(s)"
            )


class CounterFamily(_Family):
    """A counter with labels; `child(*labels)` is cached per label tuple."""

    __slots__ = ()

    def __init__(self, name: str, documentation: str, label_names: Sequence[str] = ()) -> None:
        super().__init__(name, documentation, label_names)
        self._children: dict[tuple[str, ...], CounterValue] = {}
        if not self.label_names:  # shown as 0 from the start, like prometheus_client's
            self.child()

    def child(self, *labels: str) -> CounterValue:
        value = self._children.get(labels)
        if value is None:
            self._check(labels)
            value = self._children[labels] = CounterValue()
        return value

    def collect(self) -> Metric:
        family = CounterMetricFamily(self.name, self.documentation, labels=self.label_names)
        for labels, value in self._children.items():
            family.add_metric(labels, value.value)
        return family


class HistogramFamily(_Family):
    """A histogram with labels and fixed bucket bounds (ascending, +Inf implied)."""

    __slots__ = ("bounds",)

    def __init__(
        self,
        name: str,
        documentation: str,
        label_names: Sequence[str],
        bounds: Sequence[float],
    ) -> None:
        super().__init__(name, documentation, label_names)
        if list(bounds) != sorted(set(bounds)):
            raise ValueError(f"{name}: bucket bounds must be ascending and distinct")
        self.bounds = tuple(float(b) for b in bounds)
        self._children: dict[tuple[str, ...], HistogramValue] = {}
        if not self.label_names:
            self.child()

    def child(self, *labels: str) -> HistogramValue:
        value = self._children.get(labels)
        if value is None:
            self._check(labels)
            value = self._children[labels] = HistogramValue(self.bounds)
        return value

    def collect(self) -> Metric:
        family = HistogramMetricFamily(self.name, self.documentation, labels=self.label_names)
        edges = [*(floatToGoString(b) for b in self.bounds), "+Inf"]  # type: ignore[no-untyped-call]
        for labels, value in self._children.items():
            cumulative, running = [], 0
            for edge, count in zip(edges, value.counts, strict=True):
                running += count
                cumulative.append((edge, float(running)))
            family.add_metric(labels, cumulative, sum_value=value.total)
        return family


class FamilyCollector(Collector):
    """Registers families with a `CollectorRegistry`; reads them at each scrape."""

    def __init__(self, families: Sequence[CounterFamily | HistogramFamily]) -> None:
        self._families = tuple(families)

    def collect(self) -> Iterator[Metric]:
        for family in self._families:
            yield family.collect()
