"""`cryptolake backfill` into a running pipeline: two days of a loopback archive made from the recorded Binance
session (the last day stamped in ms, the first in us), and gold must be the reference's bars of exactly those trades;
a second run sends nothing."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from core.layers import QUARANTINE_TABLE
from core.settings import Settings
from cryptolake import lake
from cryptolake.local.paths import REPO_ROOT
from cryptolake.runner import Pipeline
from tests.e2e.helpers import private_stack, wait_for_gold
from tests.ingestion.archive import SYMBOL, LoopbackArchive, recorded_trades, shifted
from tests.ingestion.kafka_topic import read_topic

pytestmark = [pytest.mark.services, pytest.mark.e2e]

WATERMARK_S = 5
TRADES_PER_DAY = 1_500
DAYS = ("2024-12-31", "2025-01-01")  # the recording (2024-08-08) shifted by 145 and 146 days


def backfill(settings: Settings) -> str:
    """What ``cryptolake backfill`` says on stderr, run as a user would; it must succeed."""
    done = subprocess.run(
        [sys.executable, "-m", "cryptolake.cli", "backfill", "binance", SYMBOL, "--from", DAYS[0], "--to", DAYS[1]],
        env={**os.environ, **settings.to_env()},
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    return done.stderr


def test_gold_over_a_backfilled_range_is_the_reference_and_a_second_run_adds_nothing(
    services: Settings, tmp_path: Path
) -> None:
    trades = [t for days in (145, 146) for t in shifted(recorded_trades(TRADES_PER_DAY), days)]
    archive = LoopbackArchive(tmp_path / "archive")
    assert [str(day) for day in archive.write(trades)] == list(DAYS)
    with archive.serving() as url:
        settings = private_stack(
            services, "backfill", 2, gold_watermark=f"{WATERMARK_S} seconds", backfill_url=url,
            backfill_trades_per_second=20_000,
        )  # fmt: skip
        first = backfill(settings)
        running = Pipeline(settings, source=None)
        running.start()
        try:
            wait_for_gold(running, trades, WATERMARK_S, "gold equal to the reference over the backfilled days")
            assert lake.read_table(settings, QUARANTINE_TABLE).num_rows == 0
            second = backfill(settings)
        finally:
            running.stop()
    assert f"2 days sent now, 0 sent before, {len(trades):,} trades" in first
    assert "0 days sent now, 2 sent before, 0 trades" in second
    assert len(read_topic(settings, len(trades))) == len(trades)
