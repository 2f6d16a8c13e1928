"""Writing the workload into Kafka as the ingestor would: all at once (backfill) or paced at a rate (live)."""

from __future__ import annotations

import threading
import time
from array import array
from collections import Counter
from dataclasses import dataclass, field

from confluent_kafka import Producer

from bench.frames import Record, records
from bench.workload import Workload, take
from core.headers import EXCHANGE_HEADER, RECEIVED_HEADER
from core.kafka import librdkafka_config
from core.settings import Settings
from ingestion.producer import Headers, producer_config

# How long after a trade the backfilled records say the ingestor received it: the order of a venue's send delay.
BACKFILL_RECEIVE_DELAY_US = 50_000
POLL_EVERY = 1_000


def _producer(settings: Settings) -> Producer:
    # The ingestor's own configuration (idempotent, acks=all, lz4, 20 ms linger), with room for a bulk load.
    return Producer(producer_config(librdkafka_config(settings), queue_frames=500_000, queue_mib=256))


def _send(producer: Producer, topic: str, record: Record, received_at_us: int) -> None:
    headers: Headers = [(EXCHANGE_HEADER, record.exchange), (RECEIVED_HEADER, b"%d" % received_at_us)]
    while True:
        try:
            producer.produce(topic, record.value, record.key, headers=headers)
            return
        except BufferError:  # the local queue is full: let Kafka take some
            producer.poll(0.05)


@dataclass(frozen=True)
class Loaded:
    """What a backfill load put into Kafka."""

    trades: int
    records: int
    bytes: int
    seconds: float
    first_event_us: int
    last_event_us: int

    @property
    def trades_per_record(self) -> float:
        return self.trades / self.records


def load(settings: Settings, workload: Workload, trades: int) -> Loaded:
    """Put ``trades`` trades into Kafka, their event times at the workload's native rate and ending about now."""
    producer = _producer(settings)
    started = time.monotonic()
    start_us = int((time.time() - trades / workload.native_rate) * 1e6)
    count = size = 0
    first_us = last_us = start_us
    for i, burst in enumerate(take(workload.bursts(), trades)):
        time_us = start_us + int(burst.at_s * 1e6)
        first_us = time_us if i == 0 else first_us
        last_us = time_us
        for record in records(burst, time_us):
            _send(producer, settings.kafka_topic, record, time_us + BACKFILL_RECEIVE_DELAY_US)
            count += 1
            size += len(record.value)
            if count % POLL_EVERY == 0:
                producer.poll(0)
    left = producer.flush(120)
    if left:
        raise RuntimeError(f"Kafka did not take {left} records within 120 s")
    return Loaded(trades, count, size, time.monotonic() - started, first_us, last_us)


SENT_BIN_US = 10_000


@dataclass
class PacerStats:
    trades: int = 0
    records: int = 0
    lag_s: array[float] = field(default_factory=lambda: array("d"))  # per burst: how late after its event time
    sent: Counter[int] = field(default_factory=Counter)  # trades by event time, in bins of SENT_BIN_US

    def trades_between(self, start_us: int, end_us: int) -> int:
        """Trades sent with event times in [start_us, end_us), both on bin boundaries."""
        return sum(n for b, n in self.sent.items() if start_us <= b * SENT_BIN_US < end_us)


class Pacer(threading.Thread):
    """Sends the workload at ``rate`` trades per second with event times of now, until stopped.

    The workload's clock maps onto the wall clock at ``rate / native_rate``; :meth:`set_rate` changes that from the
    next burst on. A burst is sent at its event time, in whole milliseconds as most venues give it (the ingestor's
    receive time is the actual send time).
    """

    def __init__(self, settings: Settings, workload: Workload, rate: float) -> None:
        super().__init__(name="pacer", daemon=True)
        self.settings = settings
        self.workload = workload
        self.stats = PacerStats()
        self._rate = rate
        self._halt = threading.Event()
        self.error: BaseException | None = None

    def set_rate(self, rate: float) -> None:
        self._rate = rate

    def stop(self) -> None:
        self._halt.set()
        self.join()

    def run(self) -> None:
        try:
            self._pace()
        except BaseException as exc:  # reported by the scenario, which cannot see this thread's traceback
            self.error = exc

    def _pace(self) -> None:
        producer = _producer(self.settings)
        native = self.workload.native_rate
        rate = self._rate
        anchor_wall, anchor_at = time.time(), 0.0
        for burst in self.workload.bursts():
            if self._rate != rate:  # re-anchor so the clock changes speed from here on
                anchor_wall += (burst.at_s - anchor_at) * native / rate
                anchor_at, rate = burst.at_s, self._rate
            due = anchor_wall + (burst.at_s - anchor_at) * native / rate
            while (wait := due - time.time()) > 0 and not self._halt.is_set():
                self._halt.wait(min(wait, 0.05))
            if self._halt.is_set():
                break
            now = time.time()
            event_us = round(due * 1e3) * 1_000
            for record in records(burst, event_us):
                _send(producer, self.settings.kafka_topic, record, int(now * 1e6))
                self.stats.records += 1
            self.stats.trades += len(burst.trades)
            self.stats.sent[event_us // SENT_BIN_US] += len(burst.trades)
            self.stats.lag_s.append(now - event_us / 1e6)
            producer.poll(0)
        producer.flush(30)
