"""The ingestor's metrics on prometheus_client, served with /healthz and /readyz for Kubernetes."""

from __future__ import annotations

import threading
import time
import urllib.request
from collections.abc import Callable
from http.server import ThreadingHTTPServer
from typing import ClassVar

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, MetricsHandler, disable_created_metrics
from prometheus_client.exposition import generate_latest
from prometheus_client.metrics import MetricWrapperBase
from prometheus_client.parser import text_string_to_metric_families

PREFIX = "cryptolake_ingestor_"
# Every metric: name (without PREFIX) -> (type, help, labels). Labels: exchange (the venue), symbol (canonical), reason.
TRADE = ("exchange", "symbol")
DEFINITIONS: dict[str, tuple[str, str, tuple[str, ...]]] = {
    "frames_total": ("counter", "Trade frames sent to Kafka, by the symbol that keys them.", TRADE),
    "bytes_total": ("counter", "Bytes of the trade frames sent to Kafka, by the symbol that keys them.", TRADE),
    "trades_total": ("counter", "Trades in the frames sent to Kafka, by each trade's symbol.", TRADE),
    "control_frames_total": ("counter", "Acks, heartbeats, pongs and status frames received.", ("exchange",)),
    "error_frames_total": (
        "counter",
        "Frames not forwarded: venue errors, malformed, binary or oversized frames.",
        ("exchange", "reason"),
    ),
    "subscription_rejections_total": ("counter", "Subscriptions the venue refused.", ("exchange",)),
    "reconnects_total": ("counter", "Connections lost (dropped, closed, silent) and opened again.", ("exchange",)),
    "handovers_total": ("counter", "Connections replaced by a new one before the venue cut them.", ("exchange",)),
    "connections": ("gauge", "Open, subscribed connections.", ("exchange",)),
    "gaps_total": (
        "counter",
        "Runs of trade ids missing for good (not filled), where ids are sequential per symbol.",
        TRADE,
    ),
    "missing_trades_total": ("counter", "Trades missing in those gaps.", TRADE),
    "filled_trades_total": ("counter", "Trades of gaps fetched from the venue's REST API and sent to Kafka.", TRADE),
    "unfilled_trades_total": (
        "counter",
        "Trades of gaps the fill could not get (the venue lists them no more, errors, a full fill queue).",
        ("exchange", "symbol", "reason"),
    ),
    "fill_requests_total": (
        "counter",
        "REST requests made to fill gaps, by outcome: ok, or error (retried a few times, then given up).",
        ("exchange", "outcome"),
    ),
    "duplicate_trades_total": ("counter", "Trades received again, e.g. in the snapshot after a reconnect.", TRADE),
    "latency_seconds": (
        "histogram",
        "Receive time minus the venue's time of the frame's newest trade or event.",
        ("exchange",),
    ),
    "producer_queue": ("gauge", "Frames in the producer's local queue, not yet acknowledged by Kafka.", ()),
    "producer_blocked": (
        "gauge",
        "1 while the producer queue is full and the ingestor has stopped reading venues.",
        (),
    ),
    "producer_blocked_seconds_total": ("counter", "Time spent blocked on a full producer queue.", ()),
    "delivered_total": ("counter", "Frames Kafka acknowledged (acks=all).", ()),
    "delivery_errors_total": ("counter", "Frames Kafka refused for good.", ()),
}
LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)
KINDS = {"counter": Counter, "gauge": Gauge, "histogram": Histogram}

# A creation-time series beside every counter only doubles what a scrape carries.
disable_created_metrics()  # type: ignore[no-untyped-call]


class Metrics:
    """The ingestor's metrics, in a registry of their own (a test makes as many as it likes)."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self._metrics: dict[str, MetricWrapperBase] = {}
        for name, (kind, help_text, labels) in DEFINITIONS.items():
            extra = {"buckets": LATENCY_BUCKETS} if kind == "histogram" else {}
            self._metrics[name] = KINDS[kind](PREFIX + name, help_text, labels, registry=self.registry, **extra)

    def counter(self, name: str, **labels: str) -> Counter:
        return self._get(name, "counter", labels)  # type: ignore[return-value]

    def gauge(self, name: str, **labels: str) -> Gauge:
        return self._get(name, "gauge", labels)  # type: ignore[return-value]

    def histogram(self, name: str, **labels: str) -> Histogram:
        return self._get(name, "histogram", labels)  # type: ignore[return-value]

    def _get(self, name: str, kind: str, labels: dict[str, str]) -> MetricWrapperBase:
        if DEFINITIONS[name][0] != kind:
            raise TypeError(f"{name} is a {DEFINITIONS[name][0]}, not a {kind}")
        metric = self._metrics[name]
        return metric.labels(**labels) if labels else metric

    def value(self, name: str, **labels: str) -> float:
        """A counter's or gauge's value, or a histogram's count; 0 for series never touched."""
        sample = PREFIX + name + ("_count" if DEFINITIONS[name][0] == "histogram" else "")
        return self.registry.get_sample_value(sample, labels) or 0.0

    def total(self, name: str) -> float:
        """Sum of a counter over all its labels."""
        return sum(s.value for m in self._metrics[name].collect() for s in m.samples if s.name == PREFIX + name)

    def render(self) -> str:
        return generate_latest(self.registry).decode()


def metric_total(port: int, name: str) -> float:
    """Sum of one of the ingestor's metrics over its labels, read from its /metrics; 0 if it does not answer."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=2) as response:
            text = response.read().decode()
    except OSError:
        return 0.0
    return sum(
        sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if sample.name == PREFIX + name
    )


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


class _Handler(MetricsHandler):
    unready: ClassVar[Callable[[], list[str]]]
    unhealthy: ClassVar[Callable[[], list[str]]]

    def do_GET(self) -> None:  # noqa: N802 - the name http.server calls
        if self.path == "/metrics":
            super().do_GET()
        elif self.path == "/healthz":
            self._probe(type(self).unhealthy(), "ok\n")
        elif self.path == "/readyz":
            self._probe(type(self).unready(), "ready\n")
        else:
            self._reply(404, "not found\n")

    def _probe(self, reasons: list[str], fine: str) -> None:
        self._reply(503 if reasons else 200, "".join(f"{r}\n" for r in reasons) if reasons else fine)

    def _reply(self, status: int, body: str) -> None:
        data = body.encode()
        self.send_response(status)
        self.send_header("Content-Type", "text/plain")
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
    host: str,
) -> ThreadingHTTPServer:
    """Serve on ``host``:``port`` /metrics, /readyz (503 with ``unready()``'s reasons while it returns any) and
    /healthz (the same with ``unhealthy()``'s, what only a restart cures: Kubernetes restarts the pod when it fails)."""
    attributes = {"registry": metrics.registry, "unready": staticmethod(unready), "unhealthy": staticmethod(unhealthy)}
    handler = type("Handler", (_Handler,), attributes)
    server = ThreadingHTTPServer((host, port), handler)
    threading.Thread(target=server.serve_forever, name="metrics-http", daemon=True).start()
    return server
