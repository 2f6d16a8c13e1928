"""Kafka topics created on purpose, by whoever needs one (local mode's trades topic, backfill's progress topic)."""

from __future__ import annotations

from confluent_kafka import KafkaError, KafkaException
from confluent_kafka.admin import AdminClient
from confluent_kafka.cimpl import NewTopic  # where mypy sees it: confluent_kafka.admin does not export it


def create_topic(admin: AdminClient, topic: NewTopic, timeout: float) -> None:
    """Create ``topic`` unless it exists (then it is left as is). Raises TimeoutError when Kafka does not answer
    within ``timeout`` s, KafkaException when it refuses for another reason."""
    created = admin.create_topics([topic], request_timeout=timeout)
    try:
        created[topic.topic].result(timeout)
    except KafkaException as exc:
        error = exc.args[0]
        if not (isinstance(error, KafkaError) and error.code() == KafkaError.TOPIC_ALREADY_EXISTS):
            raise
