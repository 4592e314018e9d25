"""`GET /metrics`: the Prometheus plumbing every process shares, the --workers front included.

The registry of a process, the event loop's lag probe, counters over objects that come and
go, and the merge of several processes' expositions into one. A media process's own figures
are read from its router by signaling.observe.media_metrics.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Hashable, Iterable, Iterator

from aiohttp import web
from prometheus_client import CollectorRegistry, ProcessCollector, generate_latest
from prometheus_client.core import (
    GaugeHistogramMetricFamily,
    Metric,
)
from prometheus_client.exposition import CONTENT_TYPE_LATEST
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.registry import Collector

MAX_PER_STREAM = 100  # the cap on --metrics-per-stream, so labels cannot explode
LAG_INTERVAL = 0.25  # seconds the lag probe sleeps between measurements
CONTENT_TYPE = CONTENT_TYPE_LATEST.split(";")[0]


class LoopLag:
    """How late the event loop wakes a task that asked to sleep: the cost of a busy loop."""

    def __init__(self) -> None:
        self.last = 0.0
        self.worst = 0.0  # since the last scrape
        self._task: asyncio.Task | None = None

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._probe())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)

    async def _probe(self) -> None:
        while True:
            asked = time.monotonic()
            await asyncio.sleep(LAG_INTERVAL)
            self.last = max(0.0, time.monotonic() - asked - LAG_INTERVAL)
            self.worst = max(self.worst, self.last)

    def take_worst(self) -> float:
        worst, self.worst = self.worst, self.last
        return worst


class Totals:
    """Counters over objects that come and go: the live ones' counts plus what gone ones left.

    Each object is named by a key no other object ever has (a stats serial)."""

    def __init__(self, width: int) -> None:
        self._gone = [0] * width
        self._last: dict[Hashable, tuple[int, ...]] = {}

    def update(self, live: Iterable[tuple[Hashable, tuple[int, ...]]]) -> list[int]:
        current = dict(live)
        for key, counts in self._last.items():
            if key not in current:
                self._gone = [a + b for a, b in zip(self._gone, counts, strict=True)]
        self._last = current
        totals = list(self._gone)
        for counts in current.values():
            totals = [a + b for a, b in zip(totals, counts, strict=True)]
        return totals


def histogram(name: str, doc: str, values: list[float], buckets: tuple[float, ...]) -> Metric:
    """Current values (one per player track) as a gauge histogram."""
    counts = [(str(bound), sum(1 for v in values if v <= bound)) for bound in buckets]
    counts.append(("+Inf", len(values)))
    return GaugeHistogramMetricFamily(name, doc, buckets=counts, gsum_value=sum(values))


def new_registry() -> CollectorRegistry:
    """A registry of this process's CPU and memory; a media process adds its router's figures
    (signaling.observe.media_metrics)."""
    registry = CollectorRegistry(auto_describe=False)
    ProcessCollector(registry=registry)
    return registry


def exposition(registry: CollectorRegistry) -> web.Response:
    return web.Response(body=generate_latest(registry), content_type=CONTENT_TYPE)


def merged(texts: list[tuple[str, str]]) -> bytes:
    """Several processes' expositions as one, each sample labelled with its process.

    Families of the same name are joined, since a name may be declared once per exposition.
    """
    families: dict[str, Metric] = {}
    for process, text in texts:
        for family in text_string_to_metric_families(text):
            metric = families.get(family.name)
            if metric is None:
                metric = Metric(family.name, family.documentation, family.type, family.unit)
                families[family.name] = metric
            for sample in family.samples:
                labels = {**sample.labels, "worker": process}
                metric.add_sample(sample.name, labels, sample.value, sample.timestamp)
    registry = CollectorRegistry(auto_describe=False)
    registry.register(Fixed(list(families.values())))
    return generate_latest(registry)


class Fixed(Collector):
    """Families already gathered, exposed as they are."""

    def __init__(self, families: list[Metric]) -> None:
        self.families = families

    def collect(self) -> Iterator[Metric]:
        return iter(self.families)
