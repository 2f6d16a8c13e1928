"""The storage scenario's arithmetic: bytes per trade per layer, gold's per bar, and a day at a few rates."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from bench.storage import kafka_segment_bytes, summarize
from core.settings import Settings

GOLD = ("gold/bars_1m", "gold/bars_5m", "gold/bars_1h", "gold/bars_1m_all_venues")


def tables() -> dict[str, dict[str, int]]:
    out: dict[str, dict[str, Any]] = {
        "bronze/trades": {"rows": 500, "data_bytes": 40_000, "log_bytes": 8_640},  # 80 B a record
        "silver/trades": {"rows": 1_000, "data_bytes": 50_000, "log_bytes": 4_320},  # 50 B a trade
        "silver/quarantine": {"rows": 2, "data_bytes": 2_000, "log_bytes": 0},
    }
    for table in GOLD:  # 1,000 B a bar; 2 series each
        out[table] = {"rows": 10, "data_bytes": 10_000, "log_bytes": 864, "series": 2}
    return out


def test_bytes_per_trade_follow_each_tables_rows_and_a_day_scales_with_the_rate() -> None:
    # 1,000 trades sent in 500 Kafka records over 864 s; Kafka's segments hold 120,000 B.
    out = summarize(1_000, 500, 864.0, 120_000, tables())
    assert out["bytes_per_trade"] == {"kafka": 120.0, "bronze": 40.0, "silver": 50.0, "quarantine": 2.0}
    assert out["gold_bytes_per_bar"] == 1_000.0
    assert out["log_bytes_per_s"] == {"bronze": 10.0, "silver": 5.0, "gold": 4.0}
    # Bars a day: 2 series x (1,440 + 288 + 24 + 1,440).
    assert sum(out["gold_bars_a_day"].values()) == 2 * 3_192
    day = 86_400
    at_500 = 500 * day
    assert out["day"]["500"] == {
        "kafka_gib": round(120 * at_500 / 2**30, 3),
        "bronze_gib": round((40 * at_500 + 10 * day) / 2**30, 3),
        "silver_gib": round((52 * at_500 + 5 * day) / 2**30, 3),
        "gold_gib": round((1_000 * 2 * 3_192 + 4 * day) / 2**30, 3),
    }
    assert out["day"]["5000"]["kafka_gib"] == pytest.approx(10 * out["day"]["500"]["kafka_gib"], abs=0.001)
    assert out["day"]["50"]["gold_gib"] == out["day"]["5000"]["gold_gib"]  # bars follow series and time only


def test_kafka_bytes_are_the_topics_segments_alone(tmp_path: Path) -> None:
    data = tmp_path / "data" / "kafka"
    for folder, files in {
        "trades-0": {"00000000000000000000.log": 300, "00000000000000000000.index": 10_000},
        "trades-1": {"00000000000000000000.log": 200},
        "trades-dlq-0": {"00000000000000000000.log": 5_000},  # another topic, named alike
        "__consumer_offsets-0": {"00000000000000000000.log": 7_000},
    }.items():
        (data / folder).mkdir(parents=True)
        for name, size in files.items():
            (data / folder / name).write_bytes(b"x" * size)
    stack = SimpleNamespace(settings=Settings(local_home=str(tmp_path)))
    assert kafka_segment_bytes(stack, "trades") == 500  # type: ignore[arg-type]
