"""A connection cut mid-recording: the ingestor fills the gap from the local venue's REST API, and silver ends with
every trade of the recording, gold with the bars a plain-Python computation makes of them."""

from __future__ import annotations

from pathlib import Path

import pytest

from core.layers import QUARANTINE_TABLE, SILVER_TABLE
from core.settings import Settings
from cryptolake import lake
from cryptolake.runner import Pipeline, Source
from ingestion.metrics import metric_total
from tests import reference
from tests.e2e.helpers import private_stack, wait_for, wait_for_gold
from tests.e2e.test_real_data import recorded_trade_frames
from tests.fixtures import recording

pytestmark = [pytest.mark.services, pytest.mark.e2e]

BTC = "binance/spot_btcusdt_trade_combined_20240808.replay.jsonl"  # 9,757 trades over 346 s
SPEED = "20"  # about 17 s of replay
CUT = (3000, 2000)  # the local venue cuts the ingestor after 3,000 frames, and 2,000 trades happen while it is away
WATERMARK_S = 5


def test_a_gap_after_a_cut_is_filled_and_gold_equals_the_reference(services: Settings, tmp_path: Path) -> None:
    settings = private_stack(services, "gapfill", 1, local_home=str(tmp_path), gold_watermark=f"{WATERMARK_S} seconds")
    expected = reference.unique(t for *_, found in recorded_trade_frames("binance", BTC) for t in found)
    running = Pipeline(settings, Source(kind="replay", recordings=(recording(BTC),), speed=SPEED, cut=CUT))
    running.start()
    try:
        port = running.settings.ingestor_http_port
        silver_rows = lambda: lake.read_table(settings, SILVER_TABLE).num_rows  # noqa: E731
        wait_for(running, lambda: silver_rows() >= len(expected), "every trade of the recording in silver",
                 state=lambda: f"{silver_rows()} of {len(expected)} in silver")  # fmt: skip
        silver = lake.read_table(settings, SILVER_TABLE).to_pylist()
        assert sorted((r["exchange"], r["symbol"], r["trade_id"]) for r in silver) == sorted(
            (t.exchange, t.symbol, t.trade_id) for t in expected
        )
        assert lake.read_table(settings, QUARANTINE_TABLE).num_rows == 0
        wait_for_gold(running, expected, WATERMARK_S, "every gold table equal to the reference")
        # The cut at least; a busy machine can add reconnects of its own (a watchdog's), each with its own gap.
        assert metric_total(port, "reconnects_total") >= 1
        assert metric_total(port, "filled_trades_total") >= CUT[1]
        assert metric_total(port, "missing_trades_total") == 0
    finally:
        running.stop()
