"""Exactly-once through crashes: kill -9 each layer during a replay, each once it has committed a batch since its
start, and MinIO once.

Each layer restarts from its checkpoint (its batch ids go on from the last one it committed); at the end, read with
delta-rs, silver holds every trade once and every gold table exactly the reference's bars of every trade.
"""

from __future__ import annotations

import os
import random
import signal
import time
from collections.abc import Callable

import pytest
from pyarrow import fs

from bench.batchlog import parse
from core import layers
from core.layers import SILVER_TABLE
from core.settings import Settings
from cryptolake import lake
from cryptolake.local.services import LocalServices
from cryptolake.runner import LAYERS, Pipeline, Source
from cryptolake.venue.synthetic import generate
from tests import reference
from tests.e2e.helpers import wait_for, wait_for_gold
from tests.ingestion.harness import wait_until

pytestmark = [pytest.mark.services, pytest.mark.e2e]

SYMBOLS = ("BTC-USDT", "ETH-USDT")
VENUES = ("binance",)  # the checks take every trade for Binance's
TRADES = 4_000
RATE = 12.0  # trades per second of event time: about five and a half minutes of it
SPEED = "1"  # in real time, so that trades still flow when the last layer is restarted, however slow its start
WATERMARK_S = 5
GONE_S = 30.0  # a SIGKILLed process group is gone well within this
# The query of each layer whose checkpoint tells its batches: the first it starts.
FIRST_QUERY = {layer: layers.LAYERS[layer].queries[0] for layer in LAYERS}


def kill_group(pid: int | None) -> None:
    assert pid is not None, "the process to kill is not running"
    os.killpg(pid, signal.SIGKILL)


def last_commit(settings: Settings, query: str) -> int:
    """The id of the newest batch ``query`` committed (-1 before its first): the files of its checkpoint's commits/."""
    folder = f"{settings.lake_bucket}/{settings.checkpoint_key(query)}/commits"
    infos = lake.filesystem(settings).get_file_info(fs.FileSelector(folder, allow_not_found=True))
    return max((int(info.base_name) for info in infos if info.base_name.isdigit()), default=-1)


def wait_for_commits(running: Pipeline, layer: str, batches: int) -> int:
    """Wait until the process of ``layer`` has committed ``batches`` batches since it was first seen running; its
    pid. A restart meanwhile (a layer fails while MinIO is down) starts the count again."""
    query = FIRST_QUERY[layer]
    seen: dict[str, int] = {}

    def committed() -> bool:
        pid = running.process(layer).running_pid()
        if pid is None:
            return False
        if seen.get("pid") != pid:
            seen.update(pid=pid, since=last_commit(running.settings, query))
        return last_commit(running.settings, query) >= seen["since"] + batches

    wait_for(running, committed, f"{layer} committing {batches} batch(es) of {query} since its start")
    return seen["pid"]


def first_batch_after(running: Pipeline, layer: str, offset: int) -> int | None:
    """The id of the first batch of ``layer``'s first query that its log shows after ``offset``."""
    with running.process(layer).log.open("rb") as log:
        log.seek(offset)
        lines = log.read().decode(errors="replace").splitlines()
    return next((batch.batch for batch in parse(lines) if batch.query == FIRST_QUERY[layer]), None)


def test_kills_lose_and_duplicate_nothing(make_settings: Callable[[], Settings]) -> None:
    settings = make_settings().with_(
        symbols=SYMBOLS, trigger_interval="2 seconds", gold_watermark=f"{WATERMARK_S} seconds", shuffle_partitions=2
    )
    start_ms = int(time.time() * 1000) - 400_000
    trades = list(generate(SYMBOLS, seed=11, start_ms=start_ms, rate=RATE, count=TRADES))
    source = Source(kind="synthetic", count=TRADES, rate=RATE, seed=11, start_ms=start_ms, speed=SPEED, venues=VENUES)
    rng = random.Random(20261121)
    victims = [*LAYERS, "minio"]
    rng.shuffle(victims)
    killed: dict[str, tuple[int, int]] = {}  # layer -> its newest commit once killed, and its log's size then
    with LocalServices(settings) as services:
        running = Pipeline(settings, source, jvm_per_layer=True)  # each layer killed on its own
        running.start()
        try:
            for victim in victims:
                # Batches since its start, or bronze's for MinIO: a kill before the first would test no recovery.
                batches = rng.randint(1, 3)
                if victim == "minio":
                    wait_for_commits(running, "bronze", batches)
                    kill_group(services.minio.pid)
                    wait_until(lambda: services.minio.pid is None, "MinIO gone after SIGKILL", GONE_S)
                    services.minio.launch()
                    services.minio.wait_ready(60)
                else:
                    kill_group(wait_for_commits(running, victim, batches))
                    wait_until(lambda v=victim: running.children[v].running_pid() is None, f"{victim} gone", GONE_S)
                    last = last_commit(running.settings, FIRST_QUERY[victim])
                    killed[victim] = last, running.process(victim).log.stat().st_size
            wait_for_gold(
                running, map(reference.from_synthetic, trades), WATERMARK_S, "every gold table equal to the reference"
            )
            assert all(running.restarts[layer] >= 1 for layer in LAYERS), running.restarts
            # Restarted from its checkpoint, a layer's batches go on after its last commit; from none, at batch 0.
            resumed = {layer: first_batch_after(running, layer, offset) for layer, (_, offset) in killed.items()}
            assert all(first is not None and first > killed[layer][0] >= 0 for layer, first in resumed.items()), (
                resumed,
                killed,
            )
            # Gold counts every trade: silver has them all by now.
            silver = lake.read_table(settings, SILVER_TABLE).to_pylist()
            assert sorted((t["symbol"], int(t["trade_id"])) for t in silver) == sorted(
                (t.symbol, t.trade_id) for t in trades
            )
        finally:
            running.stop()
