"""Exactly-once through crashes: kill -9 each layer at random points during a replay, and MinIO once.

Each layer restarts from its checkpoint; at the end silver holds every trade once and gold equals the reference.
"""

from __future__ import annotations

import os
import random
import signal
import time
from collections.abc import Callable

import pytest

from core.layers import SILVER_TABLE
from core.settings import Settings
from cryptolake import lake
from cryptolake.local.services import LocalServices
from cryptolake.runner import LAYERS, Pipeline, Source
from cryptolake.venue.synthetic import generate
from tests import reference
from tests.e2e.helpers import assert_gold_equals, bar_key, final_bars, wait_for

pytestmark = [pytest.mark.services, pytest.mark.e2e]

SYMBOLS = ("BTC-USDT", "ETH-USDT")
TRADES = 4_000
RATE = 12.0  # trades per second of event time: about five and a half minutes of it
SPEED = "8"  # sent in about 40 s, so the kills land while trades still flow
WATERMARK_S = 5


def kill_group(pid: int | None) -> None:
    assert pid is not None, "the process to kill is not running"
    os.killpg(pid, signal.SIGKILL)


def test_kills_lose_and_duplicate_nothing(make_settings: Callable[[], Settings]) -> None:
    settings = make_settings().with_(
        symbols=SYMBOLS, trigger_interval="2 seconds", gold_watermark=f"{WATERMARK_S} seconds", shuffle_partitions=2
    )
    start_ms = int(time.time() * 1000) - 400_000
    trades = list(generate(SYMBOLS, seed=11, start_ms=start_ms, rate=RATE, count=TRADES))
    source = Source(kind="synthetic", count=TRADES, rate=RATE, seed=11, start_ms=start_ms, speed=SPEED)
    rng = random.Random(20261121)
    victims = [*LAYERS, "minio"]
    rng.shuffle(victims)
    with LocalServices(settings) as services:
        running = Pipeline(settings, source, jvm_per_layer=True)  # each layer killed on its own
        running.start()
        try:
            for victim in victims:
                time.sleep(rng.uniform(4, 14))
                if victim == "minio":
                    kill_group(services.minio.pid)
                    time.sleep(2)
                    services.minio.launch()
                    services.minio.wait_ready(60)
                else:
                    # Wait until the victim runs again if an earlier kill (MinIO's) made it fail.
                    wait_for(running, lambda v=victim: running.process(v).running_pid() is not None, f"{victim} up")
                    kill_group(running.process(victim).running_pid())
            expected = reference.bars(reference.from_synthetic(t) for t in trades)
            final = final_bars(expected, max(t.time_ms for t in trades) * 1000, WATERMARK_S)
            wait_for(
                running,
                lambda: final <= {bar_key(b) for b in lake.read_bars(settings).to_pylist()},
                "every final bar in gold after the kills",
            )
            assert all(running.restarts[layer] >= 1 for layer in LAYERS), running.restarts
            assert_gold_equals(lake.read_bars(settings).to_pylist(), expected, final)
            silver = lake.read_table(settings, SILVER_TABLE).to_pylist()
            assert sorted((t["symbol"], int(t["trade_id"])) for t in silver) == sorted(
                (t.symbol, t.trade_id) for t in trades
            )
        finally:
            running.stop()
