"""Kafka producer of raw frames: idempotent, acks=all, blocking when its local queue is full."""

from __future__ import annotations

import logging
import time

from confluent_kafka import KafkaError, Message, Producer

from ingestion.metrics import Metrics

log = logging.getLogger(__name__)

EXCHANGE_HEADER = "exchange"
RECEIVED_HEADER = "received_at_us"


def producer_config(bootstrap: str) -> dict[str, object]:
    return {
        "bootstrap.servers": bootstrap,
        # Exactly one copy of each frame per partition, in order, across retries.
        "enable.idempotence": True,
        "acks": "all",
        "linger.ms": 20,
        "compression.type": "lz4",
        # Bounds memory while Kafka is down; past it, produce() blocks (see FrameProducer.send).
        "queue.buffering.max.messages": 200_000,
        "queue.buffering.max.kbytes": 256 * 1024,
        # Retry for as long as it takes: a frame accepted into the queue is never given up on.
        "delivery.timeout.ms": 2_147_483_647,
    }


class FrameProducer:
    def __init__(self, bootstrap: str, topic: str, metrics: Metrics) -> None:
        self._producer = Producer(producer_config(bootstrap))
        self._topic = topic
        self._metrics = metrics

    def send(self, exchange: str, key: bytes, frame: bytes, received_at_us: int) -> None:
        """Queue one frame; while the local queue is full, wait for deliveries rather than drop."""
        headers: list[tuple[str, str | bytes | None]] = [
            (EXCHANGE_HEADER, exchange.encode()),
            (RECEIVED_HEADER, str(received_at_us).encode()),
        ]
        while True:
            try:
                self._producer.produce(self._topic, frame, key, headers=headers, on_delivery=self._delivered)
                break
            except BufferError:
                self._metrics.inc("cryptolake_ingestor_producer_blocked_total")
                log.warning("producer queue full, blocking until Kafka takes records")
                self._producer.poll(0.5)
        self._producer.poll(0)
        self._metrics.set("cryptolake_ingestor_producer_queue", len(self._producer))

    def _delivered(self, err: KafkaError | None, msg: Message) -> None:
        if err is not None:
            self._metrics.inc("cryptolake_ingestor_delivery_errors_total")
            log.error("delivery failed: %s (key %s)", err, msg.key())
        else:
            self._metrics.inc("cryptolake_ingestor_delivered_total")

    def poll(self, timeout: float = 0) -> None:
        self._producer.poll(timeout)
        self._metrics.set("cryptolake_ingestor_producer_queue", len(self._producer))

    def flush(self, timeout: float) -> int:
        """Wait up to ``timeout`` seconds for queued frames; returns how many are still undelivered."""
        deadline = time.monotonic() + timeout
        remaining = len(self._producer)
        while remaining and time.monotonic() < deadline:
            remaining = self._producer.flush(min(1.0, deadline - time.monotonic()))
        return remaining
