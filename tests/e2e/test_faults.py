"""The fault run: 20 kill -9 during a synthetic replay, across the ingestor, each layer, Kafka and MinIO, each once
the killed part has done some work since it last started; the supervisor restarts each, as `cryptolake up` does.

Kafka asks every client for a SASL user, so the ingestor's, Spark's and the tests' logins go through the broker's
restarts too. A killed ingestor loses the frames it held that Kafka had not acknowledged (a venue sends no trade
twice), so the reference is what Kafka holds, read back apart from the pipeline. Once the venue and the ingestor are
stopped and the layers have read everything, read with delta-rs: bronze holds each Kafka record once, silver each of
their trades once and quarantine nothing, and every gold table is exactly the reference's bars.
"""

from __future__ import annotations

import os
import random
import signal
import time
from collections.abc import Callable
from dataclasses import dataclass

import pytest
from confluent_kafka import Consumer, KafkaException, TopicPartition
from pyarrow import fs

from bench.batchlog import parse
from core import layers
from core.kafka import librdkafka_config
from core.layers import BRONZE_TABLE, QUARANTINE_TABLE, SILVER_TABLE
from core.settings import Settings
from cryptolake import lake
from cryptolake.local.services import LocalServices
from cryptolake.local.supervisor import RestartPolicy
from cryptolake.runner import LAYERS, Pipeline, Source
from ingestion.metrics import metric_total
from tests import reference
from tests.e2e.helpers import wait_for, wait_for_gold
from tests.ingestion.harness import wait_until
from tests.ingestion.kafka_topic import read_topic

pytestmark = [pytest.mark.services, pytest.mark.e2e]

SYMBOLS = ("BTC-USDT", "ETH-USDT")
VENUES = ("binance",)  # the reference reads Binance's frames
RATE = 10.0  # trades per second, in real time: trades flow for as long as the kills take
WATERMARK_S = 5
GONE_S = 30.0  # a SIGKILLed process group is gone well within this
# 20 kills. A layer's restart is a JVM's start and Kafka's waits out its broker session, the dearest: the cheap ones
# are killed more.
KILLS = {"ingestor": 7, "bronze": 1, "silver": 1, "gold": 1, "kafka": 3, "minio": 7}
# Quick restarts, and room for the failures a Kafka or MinIO kill causes in the layers besides the kills themselves.
POLICY = RestartPolicy(budget=30, window=3600.0, first_delay=1.0, max_delay=5.0)
# The query of each layer whose checkpoint tells its batches: the first it starts.
FIRST_QUERY = {layer: layers.LAYERS[layer].queries[0] for layer in LAYERS}


@dataclass(frozen=True)
class Kill:
    at: float  # seconds since the pipeline started
    victim: str
    pid: int
    work: str  # what it had done since its start, when killed


def last_commit(settings: Settings, query: str) -> int | None:
    """The id of the newest batch ``query`` committed (-1 before its first), from its checkpoint's commits/ in MinIO;
    None while MinIO does not answer."""
    folder = f"{settings.lake_bucket}/{settings.checkpoint_key(query)}/commits"
    try:
        infos = lake.filesystem(settings).get_file_info(fs.FileSelector(folder, allow_not_found=True))
    except OSError:
        return None
    return max((int(info.base_name) for info in infos if info.base_name.isdigit()), default=-1)


def kafka_end(settings: Settings) -> int | None:
    """The records the topic holds, summed over its partitions; None while Kafka does not answer."""
    consumer = Consumer({**librdkafka_config(settings), "group.id": "fault-run", "log_level": 0})
    try:
        partitions = consumer.list_topics(settings.kafka_topic, timeout=5).topics[settings.kafka_topic].partitions
        topic = settings.kafka_topic
        return sum(consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=5)[1] for p in partitions)
    except KafkaException:
        return None
    finally:
        consumer.close()


def wait_for_work(
    running: Pipeline, victim: str, pid_of: Callable[[], int | None], work: Callable[[], float | None]
) -> tuple[int, str]:
    """Wait until ``victim`` has done some work since it was first seen running: ``work`` (a count that only grows)
    above what it was then. Its pid, and the work as a phrase. A restart meanwhile starts the count again."""
    seen: dict[str, float] = {}

    def worked() -> bool:
        pid = pid_of()
        done = work() if pid is not None else None
        if pid is None or done is None:
            return False
        if seen.get("pid") != pid:
            seen.update(pid=pid, since=done, now=done)
            return False
        seen["now"] = done
        return done > seen["since"]

    # Polled often: 20 waits, each seeing the new process, then its work.
    wait_for(running, worked, f"{victim} doing some work since its start", state=lambda: seen, interval=0.5)
    return int(seen["pid"]), f"{seen['since']:.0f} -> {seen['now']:.0f}"


def first_batch_after(running: Pipeline, layer: str, offset: int) -> int | None:
    """The id of the first batch of ``layer``'s first query that its log shows after ``offset``."""
    with running.process(layer).log.open("rb") as log:
        log.seek(offset)
        lines = log.read().decode(errors="replace").splitlines()
    return next((batch.batch for batch in parse(lines) if batch.query == FIRST_QUERY[layer]), None)


@pytest.mark.timeout(2400)
def test_twenty_kills_lose_and_duplicate_nothing(
    make_settings: Callable[[], Settings], capsys: pytest.CaptureFixture[str]
) -> None:
    settings = make_settings().with_(
        symbols=SYMBOLS,
        trigger_interval="2 seconds",
        gold_watermark=f"{WATERMARK_S} seconds",
        shuffle_partitions=2,
        kafka_security_protocol="SASL_PLAINTEXT",
        kafka_sasl_username="lake",
        kafka_sasl_password="fault-run-secret",
    )
    source = Source(kind="synthetic", rate=RATE, seed=11, venues=VENUES)
    rng = random.Random(20261207)
    victims = [victim for victim, times in KILLS.items() for _ in range(times)]
    rng.shuffle(victims)
    kills: list[Kill] = []
    resumed: list[tuple[str, int, int]] = []  # a killed layer, its newest commit then, and its log's size then
    with LocalServices(settings) as services:
        running = Pipeline(settings, source, jvm_per_layer=True, restart_policy=POLICY)  # each layer killed alone
        work: dict[str, tuple[Callable[[], int | None], Callable[[], float | None]]] = {
            "ingestor": (
                lambda: running.children["ingestor"].running_pid(),
                lambda: metric_total(running.settings.ingestor_http_port, "delivered_total"),
            ),
            "kafka": (lambda: services.kafka.pid, lambda: kafka_end(settings)),
            # What MinIO has taken: bronze's commits, which it stores.
            "minio": (lambda: services.minio.pid, lambda: last_commit(settings, FIRST_QUERY["bronze"])),
        }
        for layer in LAYERS:
            work[layer] = (
                lambda layer=layer: running.children[layer].running_pid(),
                lambda query=FIRST_QUERY[layer]: last_commit(settings, query),
            )
        started = time.monotonic()
        running.start(services)
        try:
            for victim in victims:
                pid_of, done = work[victim]
                pid, what = wait_for_work(running, victim, pid_of, done)
                time.sleep(rng.uniform(0, 2))  # not at the moment the work shows: anywhere in what follows
                os.killpg(pid, signal.SIGKILL)
                kills.append(Kill(round(time.monotonic() - started, 1), victim, pid, what))
                wait_until(lambda f=pid_of, p=pid: f() != p, f"{victim} ({pid}) gone after SIGKILL", GONE_S)
                if victim in LAYERS:
                    commit = last_commit(settings, FIRST_QUERY[victim])
                    assert commit is not None, "MinIO runs: no kill of it is under way"
                    resumed.append((victim, commit, running.process(victim).log.stat().st_size))
            with capsys.disabled():
                print(f"\n{len(kills)} kills in {time.monotonic() - started:.0f} s (seconds, victim, pid, work done):")
                for kill in kills:
                    print(f"  {kill.at:7.1f} {kill.victim:<8} {kill.pid:>7} {kill.work}")
            # Each killed part restarted, and a layer's batches went on after its last commit.
            # The supervisor knows a service by its process's name ("Kafka", "MinIO").
            names = {"kafka": services.kafka.process.name, "minio": services.minio.process.name}
            wait_for(
                running,
                lambda: all(running.restarts[names.get(victim, victim)] >= times for victim, times in KILLS.items()),
                "every killed part restarted",
                state=lambda: running.restarts,
            )
            for layer, commit, offset in resumed:
                wait_for(
                    running,
                    lambda layer=layer, offset=offset: first_batch_after(running, layer, offset) is not None,
                    f"{layer} committing a batch after its restart",
                )
                first = first_batch_after(running, layer, offset)
                assert first is not None and first > commit >= 0, (layer, first, commit)
        finally:
            running.stop()
        # The source stops for good; the layers alone read what Kafka holds.
        held = kafka_end(settings)
        assert held is not None
        records = read_topic(settings, held, timeout=120)
        assert len(records) == held
        trades = reference.unique(
            trade
            for record in records
            for trade in reference.trades_of(
                record.header("exchange").decode(), record.value.decode(), record.key.decode().split(":", 1)[1]
            )
            or []
        )
        drain = Pipeline(settings, None, restart_policy=POLICY)
        drain.start(services)
        try:
            wait_for_gold(drain, trades, WATERMARK_S, "every gold table equal to the reference of what Kafka holds")
        finally:
            drain.stop()
        bronze = lake.read_table(settings, BRONZE_TABLE, columns=["partition", "offset"]).to_pylist()
        assert sorted((row["partition"], row["offset"]) for row in bronze) == sorted(
            (record.partition, record.offset) for record in records
        )
        silver = lake.read_table(settings, SILVER_TABLE, columns=["symbol", "trade_id"]).to_pylist()
        assert sorted((row["symbol"], str(row["trade_id"])) for row in silver) == sorted(
            (trade.symbol, trade.trade_id) for trade in trades
        )
        assert lake.read_table(settings, QUARANTINE_TABLE).num_rows == 0
