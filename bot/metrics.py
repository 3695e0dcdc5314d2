"""A small Prometheus text-format registry (counters and histograms with labels).

Kept in-process and dependency-free: pmbot exports a handful of series, and the text
exposition format is simple and stable.
"""

from __future__ import annotations

import bisect
import threading
from collections.abc import Callable, Iterable, Mapping, Sequence

LabelValues = tuple[str, ...]


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def _labels(names: Sequence[str], values: LabelValues, extra: str = "") -> str:
    parts = [f'{n}="{_escape(v)}"' for n, v in zip(names, values, strict=True)]
    if extra:
        parts.append(extra)
    return "{" + ",".join(parts) + "}" if parts else ""


class Counter:
    def __init__(self, name: str, help_text: str, labels: Sequence[str] = ()) -> None:
        self.name, self.help, self.label_names = name, help_text, tuple(labels)
        self._values: dict[LabelValues, float] = {}
        self._lock = threading.Lock()

    def inc(self, *labels: str, amount: float = 1.0) -> None:
        with self._lock:
            self._values[labels] = self._values.get(labels, 0.0) + amount

    def value(self, *labels: str) -> float:
        return self._values.get(labels, 0.0)

    def render(self) -> Iterable[str]:
        yield f"# HELP {self.name} {self.help}"
        yield f"# TYPE {self.name} counter"
        for values, total in sorted(self._values.items()):
            yield f"{self.name}{_labels(self.label_names, values)} {total:g}"


class Histogram:
    DEFAULT_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)

    def __init__(
        self,
        name: str,
        help_text: str,
        labels: Sequence[str] = (),
        buckets: Sequence[float] = DEFAULT_BUCKETS,
    ) -> None:
        self.name, self.help, self.label_names = name, help_text, tuple(labels)
        self.buckets = tuple(sorted(buckets))
        self._counts: dict[LabelValues, list[int]] = {}
        self._sums: dict[LabelValues, float] = {}
        self._lock = threading.Lock()

    def observe(self, seconds: float, *labels: str) -> None:
        with self._lock:
            counts = self._counts.setdefault(labels, [0] * (len(self.buckets) + 1))
            counts[bisect.bisect_left(self.buckets, seconds)] += 1
            self._sums[labels] = self._sums.get(labels, 0.0) + seconds

    def count(self, *labels: str) -> int:
        return sum(self._counts.get(labels, []))

    def render(self) -> Iterable[str]:
        yield f"# HELP {self.name} {self.help}"
        yield f"# TYPE {self.name} histogram"
        for values, counts in sorted(self._counts.items()):
            running = 0
            for bound, n in zip(self.buckets, counts, strict=False):
                running += n
                le = f'le="{bound:g}"'
                yield f"{self.name}_bucket{_labels(self.label_names, values, le)} {running}"
            running += counts[-1]
            inf = 'le="+Inf"'
            yield f"{self.name}_bucket{_labels(self.label_names, values, inf)} {running}"
            yield f"{self.name}_sum{_labels(self.label_names, values)} {self._sums[values]:g}"
            yield f"{self.name}_count{_labels(self.label_names, values)} {running}"


class Registry:
    """All series of one process; ``render`` gives the Prometheus text exposition."""

    def __init__(self) -> None:
        self._series: list[Counter | Histogram] = []
        self._collectors: list[tuple[str, str, Callable[[], Mapping[str, int]]]] = []
        self.requests = self.counter(
            "pmbot_slack_requests_total", "Slack requests received", ("kind", "status")
        )
        self.ack_latency = self.histogram(
            "pmbot_slack_ack_seconds", "Time from receiving a Slack request to acking it", ("kind",)
        )
        self.duplicates = self.counter(
            "pmbot_slack_duplicates_total", "Redelivered Slack requests ignored", ("kind",)
        )
        self.errors = self.counter(
            "pmbot_errors_total", "Errors raised while handling Slack requests", ("where",)
        )

    def counter(self, name: str, help_text: str, labels: Sequence[str] = ()) -> Counter:
        series = Counter(name, help_text, labels)
        self._series.append(series)
        return series

    def histogram(self, name: str, help_text: str, labels: Sequence[str] = ()) -> Histogram:
        series = Histogram(name, help_text, labels)
        self._series.append(series)
        return series

    def add_collector(
        self, prefix: str, help_text: str, read: Callable[[], Mapping[str, int]]
    ) -> None:
        """Export counters another component keeps (read at scrape time)."""
        self._collectors.append((prefix, help_text, read))

    def render(self) -> str:
        lines: list[str] = []
        for series in self._series:
            lines.extend(series.render())
        for prefix, help_text, read in self._collectors:
            for key, value in sorted(read().items()):
                name = f"{prefix}_{key}_total"
                lines += [f"# HELP {name} {help_text}: {key}", f"# TYPE {name} counter"]
                lines.append(f"{name} {value}")
        return "\n".join(lines) + "\n"
