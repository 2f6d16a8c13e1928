"""The ingestor and Kafka: an outage blocks reading and loses nothing; SIGTERM flushes within its bound."""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import threading
import time
import urllib.request
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import psutil
import pytest
from confluent_kafka import Consumer, KafkaException

from core.kafka import librdkafka_config
from core.settings import Settings
from core.venues import Binance
from cryptolake.local.kafka import ensure_topic
from cryptolake.local.procs import free_port
from cryptolake.local.services import LocalServices
from cryptolake.venue.recordings import TimedFrame
from cryptolake.venue.server import FeedSequence, LocalVenue, VenueThread, route_path
from ingestion.config import Connection
from ingestion.ingestor import Ingestor
from ingestion.metrics import Metrics, metric_total
from ingestion.producer import FrameProducer
from tests.ingestion.frames import binance_trade
from tests.ingestion.harness import wait_until
from tests.ingestion.kafka_topic import read_topic


@contextmanager
def binance_venue(frames: list[str], rate: float) -> Iterator[tuple[str, FeedSequence]]:
    """The local venue sending ``frames`` at ``rate`` a second; yields its base URL and its sequence."""
    timed = iter([TimedFrame(i / rate, "btcusdt@trade", frame) for i, frame in enumerate(frames)])
    sequence = FeedSequence(Binance, timed, 1.0, route_path(Binance, ["BTC-USDT"]))
    venue = VenueThread(LocalVenue([sequence]))
    port = venue.start()
    try:
        yield f"ws://127.0.0.1:{port}", sequence
    finally:
        venue.stop()


def serve_deliveries(producer: FrameProducer, done: threading.Event) -> None:
    """What the ingestor's main thread does: deliveries are reported even while no frame comes."""
    while not done.is_set():
        producer.poll(0.2)


@pytest.mark.services
def test_kafka_down_for_a_while_blocks_the_ingestor_which_then_delivers_every_frame_once(
    installed: None, make_settings: Callable[[], Settings], caplog: pytest.LogCaptureFixture
) -> None:
    settings = make_settings().with_(kafka_topic="outage")
    kafka = LocalServices(settings).kafka
    kafka.start(120)
    frames = [binance_trade(i) for i in range(1, 3001)]
    metrics = Metrics()
    try:
        ensure_topic(settings, partitions=2)
        producer = FrameProducer(
            librdkafka_config(settings), settings.kafka_topic, metrics, queue_frames=200, queue_mib=1
        )
        with caplog.at_level(logging.WARNING), binance_venue(frames, rate=200) as (url, sequence):
            binance = Binance(["BTC-USDT"])
            ingestor = Ingestor([Connection(binance, binance.url(url))], producer, metrics)
            polling = threading.Event()
            poller = threading.Thread(target=serve_deliveries, args=(producer, polling))
            ingestor.start()
            poller.start()
            try:
                wait_until(lambda: metrics.value("delivered_total") >= 200, "the first deliveries")
                kafka.stop()
                wait_until(lambda: producer.blocked, "the queue full and the ingestor blocked", timeout=60)
                assert metrics.value("producer_blocked") == 1
                sent = sequence.sent
                wait_until(lambda: sequence.sent >= sent + 200, "the venue sending on while Kafka is down")
                kafka.launch()
                kafka.wait_ready(120)
                wait_until(lambda: sequence.complete, "the venue sent everything", timeout=120)
                wait_until(lambda: metrics.value("delivered_total") == len(frames), "every frame delivered", 120)
            finally:
                ingestor.stop()
                polling.set()
                poller.join()
        assert producer.flush(10) == 0
        assert metrics.value("producer_blocked") == 0
        assert metrics.value("producer_blocked_seconds_total") > 1
        assert metrics.value("reconnects_total", exchange="binance") == 0
        assert metrics.value("gaps_total", exchange="binance", symbol="BTC-USDT") == 0
        records = read_topic(settings, len(frames))
        assert Counter(r.value for r in records) == Counter(f.encode() for f in frames), "each frame exactly once"
        events = [r.getMessage() for r in caplog.records]
        assert any(e.startswith("Kafka is not taking frames") for e in events)
        assert "Kafka takes frames again; reading resumed" in events
    finally:
        kafka.stop()


def test_sigterm_with_kafka_unreachable_exits_within_the_flush_bound_and_says_what_is_lost() -> None:
    http_port = free_port()
    with binance_venue([binance_trade(i) for i in range(1, 501)], rate=1000) as (url, _):
        settings = Settings(
            kafka_bootstrap=f"127.0.0.1:{free_port()}",  # nothing listens there
            binance_url=url,
            symbols=("BTC-USDT",),
            ingestor_http_port=http_port,
            ingestor_flush_seconds=2,
        )
        ingestor = subprocess.Popen(
            [sys.executable, "-m", "ingestion"],
            env={**os.environ, **settings.to_env()},
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
        )
        try:
            wait_until(lambda: metric_total(http_port, "frames_total") == 500, "every frame received", 30)
            with urllib.request.urlopen(f"http://127.0.0.1:{http_port}/readyz", timeout=5) as response:
                assert response.status == 200
            signalled = time.monotonic()
            ingestor.send_signal(signal.SIGTERM)
            output, _ = ingestor.communicate(timeout=30)
            took = time.monotonic() - signalled
        finally:
            ingestor.kill()
    assert ingestor.returncode == 1
    assert took < 2 + 8, f"took {took:.1f} s"  # the flush bound plus closing the connection, generously
    assert b'"event": "frames left undelivered at exit", "undelivered": 500' in output


@pytest.mark.services
def test_a_broker_asking_for_a_sasl_user_takes_the_settings_one_and_refuses_others(
    installed: None, make_settings: Callable[[], Settings]
) -> None:
    settings = make_settings().with_(
        kafka_topic="sasl",
        kafka_security_protocol="SASL_PLAINTEXT",
        kafka_sasl_username="lake",
        kafka_sasl_password="lake-secret-7",
    )
    kafka = LocalServices(settings).kafka
    kafka.start(120)
    try:
        # No process shows the password on its command line; the file the storage tool read it from is gone.
        shown = [
            p.info["cmdline"] for p in psutil.process_iter(["cmdline"]) if "lake-secret-7" in str(p.info["cmdline"])
        ]
        assert not shown
        assert not list(kafka.paths.run.glob("*.args"))
        ensure_topic(settings, partitions=1)  # the admin client logs in as the settings' user
        metrics = Metrics()
        producer = FrameProducer(
            librdkafka_config(settings), settings.kafka_topic, metrics, queue_frames=10, queue_mib=1
        )
        frames = [binance_trade(i).encode() for i in range(1, 6)]
        for frame in frames:
            producer.send(b"binance", b"binance:BTC-USDT", frame, 0)
        assert producer.flush(60) == 0
        assert metrics.value("delivered_total") == len(frames)
        for refused in (
            settings.with_(kafka_sasl_password="guess"),
            settings.with_(kafka_security_protocol="PLAINTEXT"),
        ):
            consumer = Consumer({**librdkafka_config(refused), "group.id": "refused", "log_level": 0})
            try:
                with pytest.raises(KafkaException):
                    consumer.list_topics(settings.kafka_topic, timeout=10)
            finally:
                consumer.close()
    finally:
        kafka.stop()
