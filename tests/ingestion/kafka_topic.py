"""Every record of a test topic, read back from Kafka."""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass

from confluent_kafka import Consumer, KafkaError, TopicPartition

from core.kafka import librdkafka_config
from core.settings import Settings


@dataclass(frozen=True)
class Record:
    key: bytes
    value: bytes
    headers: tuple[tuple[str, bytes], ...]
    partition: int = 0
    offset: int = 0

    def header(self, name: str) -> bytes:
        return dict(self.headers)[name]


def read_topic(settings: Settings, expected: int, timeout: float = 60.0) -> list[Record]:
    """The records of the settings' topic from the start, waiting for ``expected`` of them (then to the end, so extras
    show)."""
    topic = settings.kafka_topic
    consumer = Consumer(
        {
            **librdkafka_config(settings),
            "group.id": f"test-{uuid.uuid4().hex}",
            "enable.auto.commit": False,
            "enable.partition.eof": True,
        }
    )
    try:
        partitions = consumer.list_topics(topic, timeout=10).topics[topic].partitions
        consumer.assign([TopicPartition(topic, p, 0) for p in partitions])
        records: list[Record] = []
        at_end: set[int] = set()
        deadline = time.monotonic() + timeout
        while (len(records) < expected or len(at_end) < len(partitions)) and time.monotonic() < deadline:
            message = consumer.poll(0.5)
            if message is None:
                continue
            error = message.error()
            if error is not None:
                assert error.code() == KafkaError._PARTITION_EOF, error
                at_end.add(message.partition() or 0)
                continue
            at_end.discard(message.partition() or 0)
            headers = tuple((str(h[0]), h[1] if isinstance(h[1], bytes) else b"") for h in message.headers() or ())
            where = message.partition() or 0, message.offset() or 0
            records.append(Record(message.key() or b"", message.value() or b"", headers, *where))
        return records
    finally:
        consumer.close()
