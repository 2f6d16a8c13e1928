"""Offsets that vanish from Kafka before bronze reads them stop bronze with a message, never a silent skip; and a
checkpoint deleted alone, as a user might to get past that, makes bronze refuse to start rather than read again."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest
from confluent_kafka import Producer, TopicPartition
from confluent_kafka.admin import AdminClient

from core import events
from core.layers import BRONZE_TABLE
from core.settings import Settings
from cryptolake import lake
from cryptolake.local.kafka import ensure_topic
from cryptolake.local.minio import ensure_bucket
from cryptolake.local.paths import REPO_ROOT

pytestmark = [pytest.mark.services, pytest.mark.e2e]


def _produce(settings: Settings, first: int, count: int) -> None:
    producer = Producer({"bootstrap.servers": settings.kafka_bootstrap, "enable.idempotence": True})
    for n in range(first, first + count):
        producer.produce(settings.kafka_topic, f'{{"n":{n}}}'.encode(), b"binance:BTC-USDT", partition=0)
    assert producer.flush(30) == 0


def _bronze(settings: Settings, log: Path) -> subprocess.Popen[bytes]:
    with log.open("ab") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "jobs.bronze"],
            env={**os.environ, **settings.to_env()},
            cwd=REPO_ROOT,
            stdout=out,
            stderr=subprocess.STDOUT,
        )


def test_deleted_records_fail_bronze_and_say_what_to_reset(services: Settings, tmp_path: Path) -> None:
    run = uuid.uuid4().hex[:8]
    settings = services.with_(kafka_topic=f"loss-{run}", lake_bucket=f"loss-{run}", trigger_interval="1 second")
    ensure_topic(settings, partitions=1)
    ensure_bucket(settings)
    log = tmp_path / "bronze.log"
    _produce(settings, 0, 20)

    first = _bronze(settings, log)
    deadline = time.monotonic() + 180
    while lake.read_table(settings, BRONZE_TABLE).num_rows < 20:
        assert first.poll() is None and time.monotonic() < deadline, log.read_text()[-3000:]
        time.sleep(1)
    first.send_signal(signal.SIGTERM)
    assert first.wait(90) == 0

    # Bronze has read offsets 0-19. Retention (here delete_records) removes 20-24 before it reads them.
    _produce(settings, 20, 10)
    admin = AdminClient({"bootstrap.servers": settings.kafka_bootstrap})
    for future in admin.delete_records([TopicPartition(settings.kafka_topic, 0, 25)]).values():
        future.result(30)

    second = _bronze(settings, log)
    assert second.wait(240) == 1, log.read_text()[-3000:]
    logged = [json.loads(line) for line in log.read_text().splitlines() if line.startswith("{")]
    failure = [entry for entry in logged if entry["event"] == events.QUERY_FAILED]
    assert failure and "cryptolake reset bronze" in failure[-1]["what_to_do"]
    assert lake.read_table(settings, BRONZE_TABLE).num_rows == 20  # nothing after the gap was taken either

    # Deleting the checkpoint alone would have bronze read Kafka from its earliest offset into a table that holds
    # part of it already: it refuses, and writes nothing.
    lake.filesystem(settings).delete_dir(f"{settings.lake_bucket}/{Settings.checkpoint_key('bronze')}")
    third = _bronze(settings, log)
    assert third.wait(240) == 2, log.read_text()[-3000:]
    logged = [json.loads(line) for line in log.read_text().splitlines() if line.startswith("{")]
    refusal = [entry for entry in logged if entry["event"] == events.STATE_MISMATCH]
    assert refusal and "cryptolake reset bronze" in refusal[-1]["error"], logged[-1]
    assert lake.read_table(settings, BRONZE_TABLE).num_rows == 20
