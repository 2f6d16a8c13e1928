"""The ingestor's metrics in the Prometheus text format, with /healthz and /readyz for Kubernetes."""

from __future__ import annotations

import threading
import time
from bisect import bisect_left
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import ClassVar, TypeVar

PREFIX = "cryptolake_ingestor_"
# Every metric: name (without PREFIX) -> (type, help). Labels: exchange (the venue), symbol (canonical), reason.
DEFINITIONS = {
    "frames_total": ("counter", "Trade frames sent to Kafka, by the symbol that keys them."),
    "bytes_total": ("counter", "Bytes of the trade frames sent to Kafka, by the symbol that keys them."),
    "trades_total": ("counter", "Trades in the frames sent to Kafka, by each trade's symbol."),
    "control_frames_total": ("counter", "Acks, heartbeats, pongs and status frames received."),
    "error_frames_total": ("counter", "Frames not forwarded: venue errors, malformed, binary or oversized frames."),
    "subscription_rejections_total": ("counter", "Subscriptions the venue refused."),
    "reconnects_total": ("counter", "Connections lost (dropped, closed, silent) and opened again."),
    "handovers_total": ("counter", "Connections replaced by a new one before the venue cut them."),
    "connections": ("gauge", "Open, subscribed connections."),
    "gaps_total": ("counter", "Runs of missing trade ids, where ids are sequential per symbol."),
    "missing_trades_total": ("counter", "Trades missing in those gaps."),
    "duplicate_trades_total": ("counter", "Trades received again, e.g. in the snapshot after a reconnect."),
    "latency_seconds": ("histogram", "Receive time minus the venue's time of the frame's newest trade or event."),
    "producer_queue": ("gauge", "Frames in the producer's local queue, not yet acknowledged by Kafka."),
    "producer_blocked": ("gauge", "1 while the producer queue is full and the ingestor has stopped reading venues."),
    "producer_blocked_seconds_total": ("counter", "Time spent blocked on a full producer queue."),
    "delivered_total": ("counter", "Frames Kafka acknowledged (acks=all)."),
    "delivery_errors_total": ("counter", "Frames Kafka refused for good."),
}
LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)

Labels = tuple[tuple[str, str], ...]
Key = tuple[str, Labels]


class Series:
    """One counter or gauge with fixed labels; cheap enough to update once per frame."""

    __slots__ = ("_lock", "value")

    def __init__(self, lock: threading.Lock) -> None:
        self._lock = lock
        self.value = 0.0

    def inc(self, amount: float = 1.0) -> None:
        with self._lock:
            self.value += amount

    def set(self, value: float) -> None:
        self.value = value


class Histogram:
    __slots__ = ("_lock", "bounds", "count", "counts", "sum")

    def __init__(self, lock: threading.Lock, bounds: tuple[float, ...]) -> None:
        self._lock = lock
        self.bounds = bounds
        self.counts = [0] * (len(bounds) + 1)  # the last one: above every bound
        self.count = 0
        self.sum = 0.0

    def observe(self, value: float) -> None:
        index = bisect_left(self.bounds, value)
        with self._lock:
            self.counts[index] += 1
            self.count += 1
            self.sum += value


S = TypeVar("S", Series, Histogram)


class Metrics:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._series: dict[Key, Series] = {}
        self._histograms: dict[Key, Histogram] = {}

    def counter(self, name: str, **labels: str) -> Series:
        return self._get(self._series, name, "counter", labels, lambda: Series(self._lock))

    def gauge(self, name: str, **labels: str) -> Series:
        return self._get(self._series, name, "gauge", labels, lambda: Series(self._lock))

    def histogram(self, name: str, **labels: str) -> Histogram:
        return self._get(self._histograms, name, "histogram", labels, lambda: Histogram(self._lock, LATENCY_BUCKETS))

    def _get(self, store: dict[Key, S], name: str, kind: str, labels: dict[str, str], make: Callable[[], S]) -> S:
        if DEFINITIONS[name][0] != kind:
            raise TypeError(f"{name} is a {DEFINITIONS[name][0]}, not a {kind}")
        key = (name, tuple(sorted(labels.items())))
        with self._lock:
            series = store.get(key)
            if series is None:
                series = store[key] = make()
        return series

    def value(self, name: str, **labels: str) -> float:
        """A counter's or gauge's value, or a histogram's count; 0 for series never touched."""
        key = (name, tuple(sorted(labels.items())))
        if key in self._histograms:
            return float(self._histograms[key].count)
        series = self._series.get(key)
        return 0.0 if series is None else series.value

    def total(self, name: str) -> float:
        """Sum of a counter over all its labels."""
        with self._lock:
            return sum(s.value for (n, _), s in self._series.items() if n == name)

    def render(self) -> str:
        lines: list[str] = []
        with self._lock:
            items: list[tuple[Key, Series | Histogram]] = [*self._series.items(), *self._histograms.items()]
            items.sort(key=lambda item: item[0])
            previous = None
            for (name, labels), series in items:
                full = PREFIX + name
                if name != previous:
                    kind, help_text = DEFINITIONS[name]
                    lines += [f"# HELP {full} {help_text}", f"# TYPE {full} {kind}"]
                    previous = name
                if isinstance(series, Histogram):
                    lines += _histogram_lines(full, labels, series)
                else:
                    lines.append(f"{full}{_labels(labels)} {series.value:g}")
        return "\n".join(lines) + "\n"


def _histogram_lines(name: str, labels: Labels, histogram: Histogram) -> list[str]:
    lines = []
    cumulative = 0
    for bound, count in zip((*histogram.bounds, float("inf")), histogram.counts, strict=True):
        cumulative += count
        le = "+Inf" if bound == float("inf") else f"{bound:g}"
        lines.append(f"{name}_bucket{_labels((*labels, ('le', le)))} {cumulative}")
    lines.append(f"{name}_sum{_labels(labels)} {histogram.sum:g}")
    lines.append(f"{name}_count{_labels(labels)} {histogram.count}")
    return lines


def _labels(labels: Labels) -> str:
    if not labels:
        return ""
    escaped = (v.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") for _, v in labels)
    return "{" + ",".join(f'{k}="{v}"' for (k, _), v in zip(labels, escaped, strict=True)) + "}"


class Heartbeat:
    """When a loop last came round: it has stalled once it has not for ``bound`` seconds."""

    def __init__(self, what: str, bound: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.what = what
        self.bound = bound
        self._clock = clock
        self._last = clock()

    def beat(self) -> None:
        self._last = self._clock()

    def stalled(self) -> list[str]:
        quiet = self._clock() - self._last
        return [f"{self.what} has not come round for {quiet:.0f} s"] if quiet > self.bound else []


class _Handler(BaseHTTPRequestHandler):
    metrics: ClassVar[Metrics]
    unready: ClassVar[Callable[[], list[str]]]
    unhealthy: ClassVar[Callable[[], list[str]]]

    def do_GET(self) -> None:
        if self.path == "/metrics":
            self._reply(200, self.metrics.render(), "text/plain; version=0.0.4")
        elif self.path == "/healthz":
            self._probe(type(self).unhealthy(), "ok\n")
        elif self.path == "/readyz":
            self._probe(type(self).unready(), "ready\n")
        else:
            self._reply(404, "not found\n")

    def _probe(self, reasons: list[str], fine: str) -> None:
        self._reply(503 if reasons else 200, "".join(f"{r}\n" for r in reasons) if reasons else fine)

    def _reply(self, status: int, body: str, content_type: str = "text/plain") -> None:
        data = body.encode()
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, format: str, *args: object) -> None:
        """Probes every few seconds would drown the event log."""


def serve(
    metrics: Metrics,
    port: int,
    unready: Callable[[], list[str]],
    unhealthy: Callable[[], list[str]],
    host: str = "0.0.0.0",  # noqa: S104 - a pod's probes and Prometheus come from outside it
) -> ThreadingHTTPServer:
    """Serve /metrics, /readyz (503 with ``unready()``'s reasons while it returns any) and /healthz (the same with
    ``unhealthy()``'s, what only a restart cures: Kubernetes restarts the pod when it fails)."""
    attributes = {"metrics": metrics, "unready": staticmethod(unready), "unhealthy": staticmethod(unhealthy)}
    handler = type("Handler", (_Handler,), attributes)
    server = ThreadingHTTPServer((host, port), handler)
    threading.Thread(target=server.serve_forever, name="metrics-http", daemon=True).start()
    return server
