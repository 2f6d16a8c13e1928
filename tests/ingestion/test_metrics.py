"""The Prometheus text the ingestor serves, and its probes."""

from __future__ import annotations

import urllib.error
import urllib.request

import pytest

from cryptolake.local.procs import free_port
from ingestion.metrics import Metrics, serve


def test_counters_gauges_and_histograms_in_the_text_format() -> None:
    metrics = Metrics()
    metrics.counter("frames_total", exchange="kraken", symbol="BTC-USD").inc(3)
    metrics.gauge("producer_queue").set(7)
    latency = metrics.histogram("latency_seconds", exchange="kraken")
    for seconds in (0.003, 0.04, 0.04, 100.0):
        latency.observe(seconds)
    text = metrics.render()
    assert "# TYPE cryptolake_ingestor_frames_total counter" in text
    assert 'cryptolake_ingestor_frames_total{exchange="kraken",symbol="BTC-USD"} 3' in text
    assert "cryptolake_ingestor_producer_queue 7" in text
    assert "# TYPE cryptolake_ingestor_latency_seconds histogram" in text
    assert 'cryptolake_ingestor_latency_seconds_bucket{exchange="kraken",le="0.005"} 1' in text
    assert 'cryptolake_ingestor_latency_seconds_bucket{exchange="kraken",le="0.025"} 1' in text
    assert 'cryptolake_ingestor_latency_seconds_bucket{exchange="kraken",le="0.05"} 3' in text
    assert 'cryptolake_ingestor_latency_seconds_bucket{exchange="kraken",le="60.0"} 3' in text
    assert 'cryptolake_ingestor_latency_seconds_bucket{exchange="kraken",le="+Inf"} 4' in text
    assert 'cryptolake_ingestor_latency_seconds_count{exchange="kraken"} 4' in text
    assert metrics.value("latency_seconds", exchange="kraken") == 4
    assert metrics.total("frames_total") == 3


def test_label_values_are_escaped_and_names_checked() -> None:
    metrics = Metrics()
    metrics.counter("frames_total", exchange="x", symbol='a"b\\c').inc()
    assert r'symbol="a\"b\\c"' in metrics.render()
    with pytest.raises(KeyError):
        metrics.counter("no_such_metric")
    with pytest.raises(TypeError, match="gauge"):
        metrics.counter("producer_queue")


def test_probes() -> None:
    reasons = ["not connected: kraken:BTC-USD"]
    problems = ["connection thread died: kraken:BTC-USD"]
    port = free_port()
    server = serve(Metrics(), port, lambda: list(reasons), lambda: list(problems), host="127.0.0.1")

    def get(path: str) -> tuple[int, str]:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=5) as response:
                return response.status, response.read().decode()
        except urllib.error.HTTPError as exc:
            return exc.code, exc.read().decode()

    try:
        assert get("/healthz") == (503, "connection thread died: kraken:BTC-USD\n")
        problems.clear()
        assert get("/healthz") == (200, "ok\n")
        assert get("/readyz") == (503, "not connected: kraken:BTC-USD\n")
        reasons.clear()
        assert get("/readyz") == (200, "ready\n")
        assert get("/metrics")[0] == 200
        assert get("/nothing")[0] == 404
    finally:
        server.shutdown()
