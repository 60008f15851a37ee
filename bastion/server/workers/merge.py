"""One metrics page from every worker's.

Each worker renders its own page (`observability.metrics`); the hub parses them with
prometheus_client's text parser and writes one page: counters and histograms summed
over the workers, gauges (an endpoint's breaker, health and load, as each worker sees
it) kept apart with a `worker` label.

Why not prometheus_client's multiprocess mode: it works only with prometheus_client's
own `Counter`/`Histogram` values (kept in mmap files), while the gateway's counters are
its own, cheaper families (`observability.families`), and its endpoint gauges are read
from the router at scrape time, which files cannot hold.

A sum over workers must not go backwards when one of them dies and starts again from
zero: the last counts scraped from a worker that is gone are carried into every later
page (`retire`). What it counted after its last scrape is lost; a scrape of every
worker happens whenever any page is asked for.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field

from prometheus_client import generate_latest
from prometheus_client.metrics_core import Metric
from prometheus_client.parser import text_string_to_metric_families

_SUMMED = frozenset({"counter", "histogram"})
WORKER_LABEL = "worker"

# (sample name, sorted label pairs)
SampleKey = tuple[str, tuple[tuple[str, str], ...]]


@dataclass(slots=True)
class _Family:
    type: str
    documentation: str
    sums: dict[SampleKey, float] = field(default_factory=dict)


class MetricsMerge:
    """Merges pages by worker index; remembers each worker's last counts (see above)."""

    def __init__(self) -> None:
        self._families: dict[str, tuple[str, str]] = {}  # name → (type, documentation)
        self._last: dict[int, dict[str, dict[SampleKey, float]]] = {}
        self._carried: dict[str, dict[SampleKey, float]] = {}

    def retire(self, worker: int) -> None:
        """Worker `worker` is gone: its last counts stay in the sums from now on."""
        for name, samples in self._last.pop(worker, {}).items():
            _add(self._carried.setdefault(name, {}), samples)

    def page(self, pages: Mapping[int, bytes | None]) -> bytes:
        """One page from each worker's (None: it did not answer; its last counts are
        used, and its gauges are left out)."""
        families: dict[str, _Family] = {}

        def family(name: str) -> _Family:
            found = families.get(name)
            if found is None:
                kind, documentation = self._families[name]
                found = families[name] = _Family(kind, documentation)
            return found

        for worker in sorted(pages):
            page = pages[worker]
            if page is not None:
                fresh = self._read(worker, page, family)
                self._last[worker] = _newest(self._last.get(worker, {}), fresh)
            for name, samples in self._last.get(worker, {}).items():
                _add(family(name).sums, samples)
        for name, samples in self._carried.items():
            _add(family(name).sums, samples)
        return generate_latest(_Families(families))

    def _read(
        self, worker: int, page: bytes, family: Callable[[str], _Family]
    ) -> dict[str, dict[SampleKey, float]]:
        """Adds the page's gauges to their families; returns its summed samples."""
        summed: dict[str, dict[SampleKey, float]] = {}
        for parsed in text_string_to_metric_families(page.decode()):
            self._families.setdefault(parsed.name, (parsed.type, parsed.documentation))
            if parsed.type in _SUMMED:
                samples = summed.setdefault(parsed.name, {})
                for sample in parsed.samples:
                    key = (sample.name, tuple(sorted(sample.labels.items())))
                    samples[key] = samples.get(key, 0.0) + sample.value
                continue
            gauges = family(parsed.name).sums
            for sample in parsed.samples:
                labels = {**sample.labels, WORKER_LABEL: str(worker)}
                gauges[(sample.name, tuple(sorted(labels.items())))] = sample.value
        return summed


def _add(into: dict[SampleKey, float], samples: Mapping[SampleKey, float]) -> None:
    for key, value in samples.items():
        into[key] = into.get(key, 0.0) + value


def _newest(
    last: Mapping[str, Mapping[SampleKey, float]], fresh: dict[str, dict[SampleKey, float]]
) -> dict[str, dict[SampleKey, float]]:
    """A worker's counts only go up while it lives; pages rendered concurrently may
    arrive out of order, so the higher count of each sample is the newer."""
    for name, samples in last.items():
        into = fresh.setdefault(name, {})
        for key, value in samples.items():
            if value > into.get(key, 0.0):
                into[key] = value
    return fresh


class _Families:
    """What `generate_latest` reads: anything with `collect()`."""

    def __init__(self, families: Mapping[str, _Family]) -> None:
        self._families = families

    def collect(self) -> Iterator[Metric]:
        for name, merged in self._families.items():
            metric = Metric(name, merged.documentation, merged.type)
            for (sample, labels), value in merged.sums.items():
                metric.add_sample(sample, dict(labels), value)
            yield metric
