"""Offsets that vanish from Kafka before bronze reads them stop bronze with a message, never a silent skip;
`cryptolake resume bronze` names the gap and has bronze go on past it, every table kept, silver and gold going on; and
a checkpoint deleted alone, as a user might to get past a loss, makes bronze refuse to start rather than read again."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable
from pathlib import Path

import pyarrow.compute as pc
import pytest
from confluent_kafka import Producer, TopicPartition
from confluent_kafka.admin import AdminClient
from pyarrow import fs

from core import events
from core.layers import BRONZE_TABLE, SILVER_TABLE, gold_table
from core.settings import Settings
from cryptolake import lake
from cryptolake.local.kafka import ensure_topic
from cryptolake.local.minio import ensure_bucket
from cryptolake.local.paths import REPO_ROOT
from cryptolake.venue import synthetic
from tests.e2e.helpers import cli

pytestmark = [pytest.mark.services, pytest.mark.e2e]

DEADLINE_S = 600  # per run of the layers: a loaded machine took 156 s for bronze's first batch


def _produce(settings: Settings, trades: list[synthetic.Trade]) -> None:
    producer = Producer({"bootstrap.servers": settings.kafka_bootstrap, "enable.idempotence": True})
    for t in trades:
        headers = [("exchange", b"binance"), ("received_at_us", str(t.time_ms * 1000).encode())]
        key = f"binance:{t.symbol}".encode()
        producer.produce(settings.kafka_topic, t.frame().encode(), key, headers=headers, partition=0)
    assert producer.flush(30) == 0


def _job(settings: Settings, module: str, log: Path) -> subprocess.Popen[bytes]:
    with log.open("ab") as out:
        return subprocess.Popen(
            [sys.executable, "-m", module],
            env={**os.environ, **settings.to_env()},
            cwd=REPO_ROOT,
            stdout=out,
            stderr=subprocess.STDOUT,
        )


def _run_until(settings: Settings, module: str, log: Path, done: Callable[[], bool], what: str) -> None:
    """Run the layers of ``module`` until ``done``, then stop them as `cryptolake down` does."""
    job = _job(settings, module, log)
    deadline = time.monotonic() + DEADLINE_S
    while not done():
        assert job.poll() is None, f"{module} exited {job.returncode} before {what}: {log.read_text()[-3000:]}"
        assert time.monotonic() < deadline, f"{what} not reached in {DEADLINE_S}s: {log.read_text()[-3000:]}"
        time.sleep(1)
    job.send_signal(signal.SIGTERM)
    assert job.wait(90) == 0, log.read_text()[-3000:]


def _logged(log: Path, event: str) -> list[dict[str, object]]:
    entries = [json.loads(line) for line in log.read_text().splitlines() if line.startswith("{")]
    return [entry for entry in entries if entry["event"] == event]


def _offsets(settings: Settings) -> list[int]:
    return sorted(lake.read_table(settings, BRONZE_TABLE, columns=["offset"])["offset"].to_pylist())


def _trade_ids(settings: Settings) -> list[str]:
    return sorted(lake.read_table(settings, SILVER_TABLE, columns=["trade_id"])["trade_id"].to_pylist())


def _gold_trades(settings: Settings) -> int:
    bars = lake.read_table(settings, gold_table("1m"), columns=["trades"])
    return int(pc.sum(bars["trades"]).as_py() or 0) if bars.num_rows else 0


def _checkpoints(settings: Settings) -> dict[str, list[str]]:
    """Each folder under the bucket's checkpoints, with the names of the files and folders it holds."""
    s3 = lake.filesystem(settings)
    root = f"{settings.lake_bucket}/{Settings.checkpoint_key('')}"
    folders = s3.get_file_info(fs.FileSelector(root.rstrip("/")))
    return {f.base_name: sorted(i.base_name for i in s3.get_file_info(fs.FileSelector(f.path))) for f in folders}


def test_a_data_loss_stops_bronze_and_resume_goes_on_past_the_gap_it_names(services: Settings, tmp_path: Path) -> None:
    run = uuid.uuid4().hex[:8]
    settings = services.with_(kafka_topic=f"loss-{run}", lake_bucket=f"loss-{run}", trigger_interval="1 second")
    ensure_topic(settings, partitions=1)
    ensure_bucket(settings)
    log = tmp_path / "layers.log"
    start_ms = int(time.time() * 1000) // 60_000 * 60_000 - 300_000
    trades = list(synthetic.generate(["BTC-USDT"], seed=21, start_ms=start_ms, rate=2.0, count=30))
    ids = [str(t.trade_id) for t in trades]
    _produce(settings, trades[:20])
    _run_until(
        settings,
        "jobs.all_layers",
        log,
        lambda: _gold_trades(settings) == 20,
        "the first 20 trades in gold",
    )
    assert _trade_ids(settings) == sorted(ids[:20])

    # Bronze has read offsets 0-19. Retention (here delete_records) removes 20-24 before it reads them.
    _produce(settings, trades[20:])
    admin = AdminClient({"bootstrap.servers": settings.kafka_bootstrap})
    for future in admin.delete_records([TopicPartition(settings.kafka_topic, 0, 25)]).values():
        future.result(30)

    bronze = _job(settings, "jobs.bronze", log)
    assert bronze.wait(240) == 1, log.read_text()[-3000:]
    failure = _logged(log, events.QUERY_FAILED)
    assert failure and "cryptolake resume bronze" in str(failure[-1]["what_to_do"])
    assert "cryptolake reset bronze" in str(failure[-1]["what_to_do"])
    assert _offsets(settings) == list(range(20))  # nothing after the gap was taken either
    before = _checkpoints(settings)
    assert "offsets" in before["bronze"]

    # Asked without a terminal to confirm on and without --yes, resume names the gap and changes nothing.
    asked = subprocess.run(
        [sys.executable, "-m", "cryptolake.cli", "resume", "bronze"],
        env={**os.environ, **settings.to_env()},
        cwd=REPO_ROOT,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=120,
    )
    gap = f"{settings.kafka_topic}-0: bronze holds up to offset 19, Kafka holds 25-29: offsets 20-24 are gone (5)"
    assert asked.returncode == 1 and gap in asked.stdout, asked.stdout + asked.stderr
    assert _checkpoints(settings) == before

    resumed = cli(settings, "resume", "bronze", "--yes")
    assert gap in resumed, resumed
    after = _checkpoints(settings)
    # The old checkpoint is kept whole beside the new one, which holds only where to start.
    (aside,) = [name for name in after if name.startswith("bronze.set-aside-")]
    assert after[aside] == before["bronze"] and after["bronze"] == ["resume.json"]

    # Bronze goes on from offset 25: every record Kafka still had, once; silver and gold take them on from there.
    _run_until(settings, "jobs.all_layers", log, lambda: _gold_trades(settings) == 25, "the 25 trades in gold")
    assert _offsets(settings) == [*range(20), *range(25, 30)]
    assert _trade_ids(settings) == sorted(ids[:20] + ids[25:])
    (gaps,) = [entry["gaps"] for entry in _logged(log, events.RESUMED)]
    assert gaps == [{"topic": settings.kafka_topic, "partition": 0, "from": 20, "to": 24}]

    # Deleting the checkpoint alone would have bronze read Kafka from its earliest offset into a table that holds
    # part of it already: it refuses, and writes nothing.
    lake.filesystem(settings).delete_dir(f"{settings.lake_bucket}/{Settings.checkpoint_key('bronze')}")
    refused = _job(settings, "jobs.bronze", log)
    assert refused.wait(240) == 2, log.read_text()[-3000:]
    refusal = _logged(log, events.STATE_MISMATCH)
    assert refusal and "cryptolake reset bronze" in str(refusal[-1]["error"]), refusal
    assert _offsets(settings) == [*range(20), *range(25, 30)]
