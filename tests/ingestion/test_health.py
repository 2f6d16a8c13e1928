"""What keeps the ingestor from hanging while its probes pass: a bounded backoff, /healthz failing on a dead
connection thread or a stalled main loop, and an exit on a fatal producer error."""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys

import pytest
from confluent_kafka import KafkaError

from core.settings import Settings
from core.venues import Binance
from cryptolake.local.procs import free_port
from ingestion.config import Connection
from ingestion.connection import Backoff
from ingestion.ingestor import Ingestor
from ingestion.metrics import Heartbeat, Metrics
from ingestion.producer import FrameProducer
from tests.ingestion.harness import Sent, wait_until


def test_the_backoff_stays_within_its_cap_over_a_million_attempts() -> None:
    backoff = Backoff(initial=0.5, cap=30.0)
    delays = [backoff.next() for _ in range(1_000_000)]  # the unbounded 2**attempt overflowed after ~1000
    assert min(delays) >= 0 and max(delays) <= 30.0
    assert max(delays[-1000:]) > 15.0, "still the full jitter of the cap"
    backoff.reset()
    assert backoff.next() <= 0.5


def test_healthz_fails_once_a_connection_thread_has_died(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    def overflow(_backoff: Backoff) -> float:
        raise OverflowError("int too large to convert to float")  # what the unbounded backoff raised

    monkeypatch.setattr(Backoff, "next", overflow)
    binance = Binance(["BTC-USDT"])
    nowhere = f"ws://127.0.0.1:{free_port()}"  # refused at once, so the link waits to reconnect
    ingestor = Ingestor([Connection(binance, binance.url(nowhere))], Sent(), Metrics())
    assert ingestor.unhealthy() == []
    with caplog.at_level(logging.ERROR):
        ingestor.start()
        try:
            wait_until(ingestor.unhealthy, "the dead connection thread reported")
            assert ingestor.unhealthy() == ["connection thread died: binance:BTC-USDT"]
        finally:
            ingestor.stop()
    assert ingestor.unhealthy() == [], "stopped on purpose is not dead"
    assert any(r.getMessage().startswith("connection thread died") for r in caplog.records)


def test_a_main_loop_that_stops_coming_round_is_reported_once_past_its_bound() -> None:
    now = [100.0]
    heartbeat = Heartbeat("the main loop", 30.0, clock=lambda: now[0])
    now[0] += 29.0
    assert heartbeat.stalled() == []
    heartbeat.beat()
    now[0] += 31.0
    assert heartbeat.stalled() == ["the main loop has not come round for 31 s"]
    heartbeat.beat()
    assert heartbeat.stalled() == []


def test_a_fatal_producer_error_is_kept_and_a_passing_one_is_not() -> None:
    producer = FrameProducer(
        {"bootstrap.servers": f"127.0.0.1:{free_port()}"}, "t", Metrics(), queue_frames=10, queue_mib=1
    )
    producer._client_error(KafkaError(KafkaError._TRANSPORT, "broker down"))
    assert producer.fatal_error is None
    fenced = KafkaError(KafkaError._FENCED, "producer fenced", fatal=True)
    producer._client_error(fenced)
    assert producer.fatal_error is fenced


# The ingestor as a process, its producer hit by a fatal error the way librdkafka reports one: from poll().
FENCED_INGESTOR = """
import sys
from confluent_kafka import KafkaError
from ingestion import app
from ingestion.producer import FrameProducer

class Fenced(FrameProducer):
    def poll(self, timeout: float = 0) -> None:
        self._client_error(KafkaError(KafkaError._FENCED, "producer fenced", fatal=True))

app.FrameProducer = Fenced
sys.exit(app.main())
"""


def test_a_fatal_producer_error_ends_the_ingestor_with_an_error_line_and_a_non_zero_exit() -> None:
    settings = Settings(
        kafka_bootstrap=f"127.0.0.1:{free_port()}",
        binance_url=f"ws://127.0.0.1:{free_port()}",
        ingestor_http_port=free_port(),
    )
    done = subprocess.run(
        [sys.executable, "-c", FENCED_INGESTOR],
        env={**os.environ, **settings.to_env()},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 1, done.stdout + done.stderr
    lines = [json.loads(line) for line in done.stdout.splitlines() if line.startswith("{")]
    (last,) = [line for line in lines if line["level"] == "error"][-1:]
    assert last["event"].startswith("the Kafka producer failed for good")
    assert "producer fenced" in last["error"]
