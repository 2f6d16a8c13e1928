"""Floor: the same Kafka records read with confluent-kafka and written as Parquet with pyarrow, as fast as it goes.

Bronze's work with nothing else: every record of the topic, with its key, value, headers and Kafka metadata, into
Parquet files (snappy, as Spark writes them) of up to ``FILE_RECORDS`` rows in MinIO. One worker process per core,
each on its share of the partitions, as Spark's ``local[N]`` runs one task per partition and core. Timed from the
first read to the last file closed; the workers start reading together once all are up (start-up excluded, as the
layers' JVM start-up is).
"""

from __future__ import annotations

import os
import time
import uuid
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from multiprocessing import get_context

import pyarrow as pa
import pyarrow.parquet as pq
from confluent_kafka import OFFSET_BEGINNING, Consumer, Message, TopicPartition

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
    """From ``go_at`` on, read ``partitions`` of the topic to their end and write them as Parquet under ``prefix``."""
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
    s3 = lake.filesystem(settings)
    pending: list[Message] = []
    records = files = 0
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
            pq.write_table(_table(pending), f"{prefix}/part-{os.getpid()}-{files}.parquet", filesystem=s3)
            records += len(pending)
            files += 1
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
    """Copy the whole of ``settings.kafka_topic`` into ``settings.lake_bucket``/floor with ``workers`` processes."""
    partitions = _topic_partitions(settings)
    shares = [partitions[i::workers] for i in range(workers)]
    prefix = f"{settings.lake_bucket}/floor/{uuid.uuid4().hex[:8]}"
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
