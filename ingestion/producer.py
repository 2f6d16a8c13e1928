"""Kafka producer of raw frames: idempotent, acks=all, and blocking (never dropping) when its local queue is full."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Mapping

from confluent_kafka import KafkaError, Message, Producer

from core import logs
from core.headers import BACKFILL_HEADER, EXCHANGE_HEADER, FILLED_HEADER, RECEIVED_HEADER, REPLAY_HEADER
from core.throttle import Throttle
from ingestion.metrics import Metrics

log = logging.getLogger(__name__)

# The largest frame Kafka takes with its default limits (Redpanda's and Kafka's are about 1 MiB a batch).
MAX_FRAME_BYTES = 1_000_000
BLOCKED_LOG_SECONDS = 30.0

Headers = list[tuple[str, str | bytes | None]]


def producer_config(connection: Mapping[str, str], queue_frames: int, queue_mib: int) -> dict[str, object]:
    """A producer's settings: ``connection`` (core.kafka.librdkafka_config) and how it delivers."""
    return {
        **connection,
        # Exactly one copy of each frame per partition, in order, across retries.
        "enable.idempotence": True,
        "acks": "all",
        "linger.ms": 20,
        "compression.type": "lz4",
        # The memory bound while Kafka is slow or down; past it, send() blocks.
        "queue.buffering.max.messages": queue_frames,
        "queue.buffering.max.kbytes": queue_mib * 1024,
        "message.max.bytes": MAX_FRAME_BYTES + 4096,  # room for key and headers
        # Retry for as long as it takes: a frame accepted into the queue is never given up on.
        "delivery.timeout.ms": 2_147_483_647,
        # librdkafka's own log lines go through Python logging, so they come out as JSON too.
        "logger": logging.getLogger("librdkafka"),
    }


class FrameProducer:
    """Sends frames to one topic. When the local queue is full, :meth:`send` waits for Kafka: the ingestor stops
    reading its venues rather than drop a frame it has received, and says so in its log and metrics."""

    def __init__(
        self,
        connection: Mapping[str, str],
        topic: str,
        metrics: Metrics,
        *,
        queue_frames: int,
        queue_mib: int,
        replay: bool = False,
        backfill: bool = False,
    ) -> None:
        config = producer_config(connection, queue_frames, queue_mib)
        marks = ((REPLAY_HEADER, replay), (BACKFILL_HEADER, backfill))
        self._marks: Headers = [(name, b"1") for name, on in marks if on]
        self._producer = Producer({**config, "error_cb": self._client_error})
        self._topic = topic
        self._queue = metrics.gauge("producer_queue")
        self._blocked_gauge = metrics.gauge("producer_blocked")
        self._blocked_seconds = metrics.counter("producer_blocked_seconds_total")
        self._delivered = metrics.counter("delivered_total")
        self._errors = metrics.counter("delivery_errors_total")
        self._state = threading.Lock()
        self._blocked_senders = 0
        self._blocked_since = 0.0
        self._closing = threading.Event()
        self._lost = 0  # frames a sender still held when shutdown ended its wait
        self._throttle = Throttle(BLOCKED_LOG_SECONDS)
        self.fatal_error: KafkaError | None = None  # once set, the producer delivers nothing any more

    @property
    def blocked(self) -> bool:
        return self._blocked_senders > 0

    def send(self, exchange: bytes, key: bytes, frame: bytes, received_at_us: int, *, filled: bool = False) -> None:
        headers: Headers = [(EXCHANGE_HEADER, exchange), (RECEIVED_HEADER, b"%d" % received_at_us), *self._marks]
        if filled:
            headers.append((FILLED_HEADER, b"1"))
        try:
            self._producer.produce(self._topic, frame, key, headers=headers, on_delivery=self._on_delivery)
        except BufferError:
            self._wait_for_room(frame, key, headers)
        self._producer.poll(0)

    def _wait_for_room(self, frame: bytes, key: bytes, headers: Headers) -> None:
        with self._state:
            self._blocked_senders += 1
            if self._blocked_senders == 1:
                self._blocked_since = time.monotonic()
                self._blocked_gauge.set(1)
                log.error(
                    "Kafka is not taking frames: the producer queue is full, so the ingestor stops reading the "
                    "venues until it drains (it blocks, it never drops a received frame)",
                    extra=logs.fields(queued=len(self._producer)),
                )
        try:
            while not self._closing.is_set():
                self._producer.poll(0.5)
                try:
                    self._producer.produce(self._topic, frame, key, headers=headers, on_delivery=self._on_delivery)
                    return
                except BufferError:
                    if self._throttle.allow("blocked") is not None:
                        log.error(
                            "still blocked on Kafka",
                            extra=logs.fields(
                                blocked_s=round(time.monotonic() - self._blocked_since), queued=len(self._producer)
                            ),
                        )
            with self._state:
                self._lost += 1
        finally:
            with self._state:
                self._blocked_senders -= 1
                if self._blocked_senders == 0:
                    blocked_s = time.monotonic() - self._blocked_since
                    self._blocked_seconds.inc(blocked_s)
                    self._blocked_gauge.set(0)
                    log.warning(
                        "Kafka takes frames again; reading resumed", extra=logs.fields(blocked_s=round(blocked_s, 1))
                    )

    def _on_delivery(self, err: KafkaError | None, msg: Message) -> None:
        if err is None:
            self._delivered.inc()
            return
        self._errors.inc()
        held = self._throttle.allow("delivery")
        if held is not None:
            log.error("Kafka refused a frame", extra=logs.fields(error=str(err), key=msg.key(), similar_held_back=held))

    def _client_error(self, err: KafkaError) -> None:
        if err.fatal():
            # librdkafka gives up for good (e.g. fenced as an idempotent producer): only a new process delivers again.
            self.fatal_error = err
            self._closing.set()  # senders blocked on a full queue stop waiting for room that never comes
            return
        held = self._throttle.allow(f"client:{err.code()}")
        if held is not None:
            log.warning("Kafka client error", extra=logs.fields(error=str(err), similar_held_back=held))

    def poll(self, timeout: float = 0) -> None:
        """Serve delivery reports; also updates the queue gauge."""
        self._producer.poll(timeout)
        self._queue.set(len(self._producer))

    def settle(self, timeout: float) -> int:
        """Wait up to ``timeout`` s for every queued frame's delivery report, and go on sending after; returns how
        many frames are still queued."""
        remaining = self._producer.flush(timeout)
        self._queue.set(remaining)
        return remaining

    def flush(self, timeout: float) -> int:
        """Stop waiting for room, wait up to ``timeout`` s for queued frames; returns how many were not delivered."""
        self._closing.set()
        deadline = time.monotonic() + timeout
        remaining = len(self._producer)
        while remaining and time.monotonic() < deadline:
            remaining = self._producer.flush(min(1.0, max(0.0, deadline - time.monotonic())))
        self._queue.set(remaining)
        return remaining + self._lost
