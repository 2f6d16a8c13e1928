"""`cryptolake resume bronze`: bronze goes on from the earliest offsets Kafka still holds, past those its table holds,
once the records Kafka no longer holds (the gap) are named. Every table stays as it is: silver and gold go on."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from confluent_kafka import Consumer, KafkaException, TopicPartition

from core.kafka import librdkafka_config
from core.settings import Settings
from cryptolake.local.procs import ServiceError

KAFKA_TIMEOUT_S = 10.0


@dataclass(frozen=True)
class PartitionStart:
    """Where bronze starts reading one partition of ``topic``: past what its table holds, at what Kafka holds."""

    topic: str
    partition: int
    following: int  # the offset after the highest bronze holds; 0 where it holds none of the partition
    earliest: int  # the earliest offset Kafka holds now
    end: int  # the offset Kafka gives its next record

    @property
    def start(self) -> int:
        return max(self.following, self.earliest)

    @property
    def lost(self) -> int:
        """Offsets bronze never read that Kafka no longer holds."""
        return self.start - self.following

    def describe(self) -> str:
        held = f"bronze holds up to offset {self.following - 1}" if self.following else "bronze holds none"
        gap = f"offsets {self.following}-{self.start - 1} are gone ({self.lost})" if self.lost else "nothing is lost"
        return f"{self.topic}-{self.partition}: {held}, Kafka holds {self.earliest}-{self.end - 1}: {gap}"

    def gap(self) -> dict[str, int | str]:
        return {"topic": self.topic, "partition": self.partition, "from": self.following, "to": self.start - 1}


def plan(topic: str, highest: Mapping[int, int], watermarks: Mapping[int, tuple[int, int]]) -> list[PartitionStart]:
    """Each partition's start from the highest offset bronze holds of it (``highest``) and Kafka's earliest and end
    offsets (``watermarks``). A ValueError where Kafka's offsets cannot continue bronze's: the topic was recreated,
    and its offsets name other records than those bronze read."""
    vanished = sorted(set(highest) - set(watermarks))
    if vanished:
        raise ValueError(
            f"bronze holds records of partitions {', '.join(map(str, vanished))} of {topic}, which Kafka does not "
            "have: the topic was recreated, and its offsets do not follow bronze's. Reset bronze, silver and gold "
            "instead (`cryptolake reset bronze`, then silver, then gold)"
        )
    starts = [
        PartitionStart(topic, partition, highest.get(partition, -1) + 1, earliest, end)
        for partition, (earliest, end) in sorted(watermarks.items())
    ]
    ahead = [s for s in starts if s.following > s.end]
    if ahead:
        raise ValueError(
            "bronze holds offsets Kafka has not reached: "
            + "; ".join(f"{s.topic}-{s.partition} up to {s.following - 1}, Kafka's end is {s.end}" for s in ahead)
            + ". The topic was recreated, and its offsets name other records than those bronze read. Reset bronze, "
            "silver and gold instead (`cryptolake reset bronze`, then silver, then gold)"
        )
    return starts


def resume_point(starts: Iterable[PartitionStart], now: datetime) -> dict[str, Any]:
    """What bronze starts from: Spark's ``startingOffsets`` (``{topic: {partition: offset}}``, every partition named,
    as Spark wants) and the gaps, which bronze logs again as it starts."""
    starts = list(starts)
    offsets: dict[str, dict[str, int]] = {}
    for s in starts:
        offsets.setdefault(s.topic, {})[str(s.partition)] = s.start
    return {
        "written_at": now.isoformat(),
        "starting_offsets": offsets,
        "gaps": [s.gap() for s in starts if s.lost],
        "lost": sum(s.lost for s in starts),
    }


def watermarks(settings: Settings) -> dict[int, tuple[int, int]]:
    """Per partition of the topic, Kafka's earliest offset and the one it gives its next record."""
    topic = settings.kafka_topic
    consumer = Consumer({**librdkafka_config(settings), "group.id": "cryptolake-resume", "enable.auto.commit": False})
    try:
        found = consumer.list_topics(topic, timeout=KAFKA_TIMEOUT_S).topics.get(topic)
        if found is None or found.error is not None:
            raise ServiceError(f"Kafka at {settings.kafka_bootstrap} has no topic {topic}: {found and found.error}")
        offsets = {}
        for p in found.partitions:
            low_end = consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=KAFKA_TIMEOUT_S)
            if low_end is None:
                raise ServiceError(f"Kafka at {settings.kafka_bootstrap} did not say the offsets of {topic}-{p}")
            offsets[p] = low_end
        return offsets
    except KafkaException as exc:
        raise ServiceError(f"Kafka at {settings.kafka_bootstrap} did not answer ({exc}): is it up?") from exc
    finally:
        consumer.close()
