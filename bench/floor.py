"""Floor: the same Kafka records read with confluent-kafka and appended to Delta tables with delta-rs, flat out.

Bronze's work with nothing else: every record of the topic, with its key, value, headers and Kafka metadata, into
a Delta table in MinIO, one commit of up to ``FILE_RECORDS`` rows at a time. One worker process per core, each on its
share of the partitions and with a table of its own (one writer per table, as each layer is), as Spark's
``local[N]`` runs one task per partition and core. Timed from the first read to the last commit; the workers start
reading together once all are up (start-up excluded, as the layers' JVM start-up is).
"""

from __future__ import annotations

import os
import time
import uuid
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from multiprocessing import get_context

import pyarrow as pa
from confluent_kafka import OFFSET_BEGINNING, Consumer, Message, TopicPartition
from deltalake import write_deltalake

from core.settings import Settings
from cryptolake import lake

FILE_RECORDS = 200_000
WORKER_START_S = 5.0  # time for the workers to import and connect before they start together
HEADERS = pa.list_(pa.struct([("key", pa.string()), ("value", pa.binary())]))
SCHEMA = pa.schema(
    [
        ("key", pa.binary()),
        ("value", pa.binary()),
        ("topic", pa.string()),
        ("partition", pa.int32()),
        ("offset", pa.int64()),
        ("kafka_timestamp", pa.timestamp("ms", tz="UTC")),
        ("headers", HEADERS),
    ]
)


@dataclass(frozen=True)
class Part:
    """One worker's share."""

    records: int
    start: float
    end: float


def _table(messages: list[Message]) -> pa.Table:
    return pa.table(
        {
            "key": [m.key() for m in messages],
            "value": [m.value() for m in messages],
            "topic": [m.topic() for m in messages],
            "partition": [m.partition() for m in messages],
            "offset": [m.offset() for m in messages],
            "kafka_timestamp": [m.timestamp()[1] for m in messages],
            "headers": [m.headers() for m in messages],
        },
        schema=SCHEMA,
    )


def _copy(settings: Settings, partitions: list[int], prefix: str, go_at: float) -> Part:
    """From ``go_at`` on, read ``partitions`` of the topic to their end and append them to a Delta table of this
    worker's under ``prefix``."""
    consumer = Consumer(
        {
            "bootstrap.servers": settings.kafka_bootstrap,
            "group.id": f"bench-floor-{uuid.uuid4().hex}",
            "enable.auto.commit": False,
            "log_level": 4,
        }
    )
    topic = settings.kafka_topic
    ends = {p: consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=30)[1] for p in partitions}
    todo = {p for p, end in ends.items() if end > 0}
    consumer.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in todo])
    table = f"{prefix}/worker-{os.getpid()}"
    pending: list[Message] = []
    records = 0
    time.sleep(max(0.0, go_at - time.time()))
    start = time.time()
    while todo or pending:
        batch = consumer.consume(num_messages=10_000, timeout=1.0) if todo else []
        for message in batch:
            partition, offset = message.partition(), message.offset()
            if message.error() or partition is None or offset is None:
                raise RuntimeError(f"floor: Kafka error {message.error()}")
            if offset + 1 >= ends[partition]:
                todo.discard(partition)
        pending += batch
        if len(pending) >= FILE_RECORDS or (pending and not todo):
            write_deltalake(table, _table(pending), mode="append", storage_options=lake.storage_options(settings))
            records += len(pending)
            pending = []
    consumer.close()
    return Part(records, start, time.time())


@dataclass(frozen=True)
class Floor:
    records: int
    seconds: float
    workers: int

    @property
    def records_per_s(self) -> float:
        return self.records / self.seconds


def run(settings: Settings, workers: int) -> Floor:
    """Copy the whole of ``settings.kafka_topic`` into Delta tables under ``settings.lake_bucket``/floor with
    ``workers`` processes."""
    partitions = _topic_partitions(settings)
    shares = [partitions[i::workers] for i in range(workers)]
    prefix = lake.table_uri(settings, f"floor/{uuid.uuid4().hex[:8]}")
    go_at = time.time() + WORKER_START_S
    # spawn: this process has threads (the memory sampler, librdkafka's), which fork would copy half-way.
    with ProcessPoolExecutor(workers, mp_context=get_context("spawn")) as pool:
        parts = list(pool.map(_copy, [settings] * workers, shares, [prefix] * workers, [go_at] * workers))
    return Floor(sum(p.records for p in parts), max(p.end for p in parts) - min(p.start for p in parts), workers)


def _topic_partitions(settings: Settings) -> list[int]:
    consumer = Consumer({"bootstrap.servers": settings.kafka_bootstrap, "group.id": "bench-floor", "log_level": 4})
    try:
        topic = consumer.list_topics(settings.kafka_topic, timeout=30).topics[settings.kafka_topic]
        return sorted(topic.partitions)
    finally:
        consumer.close()
