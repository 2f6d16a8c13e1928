"""Storage: the bytes each layer keeps per trade, and what a day costs at a few rates.

The whole pipeline runs under a steady live load (``rate`` trades/s for ``seconds``); the load then stops and the
lake is given up to ``CATCH_UP_S`` to hold every trade sent in silver. Then, per layer:

- Kafka: the bytes of the topic's log segments (``*.log`` of every partition folder in the local broker's data
  folder; the indexes are preallocated and trimmed when a segment rolls, so they are left out);
- each lake table: the bytes of the data files of its newest version (from its Delta log, the files a compaction
  replaced left out: vacuum deletes them) and of its ``_delta_log``, and its rows.

Data bytes grow with the trades; a table's log grows with its commits (one per micro-batch: with time, at the
trigger interval, whatever the rate), and gold's bars grow with the series (venue x symbol) and time, not the trades.
So a day is: Kafka and bronze/silver data per trade x trades, plus logs per second x a day, plus gold per bar x bars
a day (each gold table's series x its bars a day). Per trade is per row the table holds (bronze's rows are Kafka
records: x records per trade sent), so a lake still catching up at the end is measured right. Auto-compaction
(``jobs/session.py``) has run in the writers by the time of the measure.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from bench.produce import Pacer
from bench.soak import list_objects, prefix_sizes
from bench.stack import Stack, Tuning, pipeline, wait_on
from bench.workload import Workload
from core.layers import (
    ALL_VENUES,
    BAR_INTERVALS,
    BRONZE_TABLE,
    GOLD_OUTPUTS,
    LAYERS,
    QUARANTINE_TABLE,
    SILVER_TABLE,
    gold_table,
)
from core.settings import Settings, duration_seconds
from cryptolake import lake
from cryptolake.local.minio import s3_client
from cryptolake.local.paths import LocalPaths
from cryptolake.runner import Pipeline

CATCH_UP_S = 300.0
WARM_UP_LIMIT_S = 900.0  # a busy machine takes minutes to its first batch of every layer (Delta creates the tables)
POLL_S = 2.0
DAY_S = 86_400
DAY_RATES = (50, 500, 5_000)  # trades/s of the cost-of-a-day table
GOLD_TABLES = LAYERS["gold"].tables
BAR_SECONDS = {
    gold_table(interval, across): duration_seconds(BAR_INTERVALS[interval]) for interval, across in GOLD_OUTPUTS
}
LAYERS_TABLES = tuple(table for layer in LAYERS.values() for table in layer.tables)


class StorageError(RuntimeError):
    pass


def kafka_segment_bytes(stack: Stack, topic: str) -> int:
    """Bytes of ``topic``'s log segments in the stack's broker's data folder (every partition)."""
    data = LocalPaths.of(stack.settings).data / "kafka"
    return sum(
        segment.stat().st_size
        for folder in data.glob(f"{topic}-*")
        if (name := folder.name.rpartition("-"))[0] == topic and name[2].isdigit()
        for segment in folder.glob("*.log")
    )


def table_figures(settings: Settings, table: str, log_bytes: int) -> dict[str, int]:
    """Rows and data bytes of ``table``'s newest version, and its log's bytes; a gold table's series too."""
    delta = lake.open_table(settings, table)
    if delta is None:
        return {"rows": 0, "data_bytes": 0, "log_bytes": log_bytes}
    actions = delta.get_add_actions()
    rows = actions.column("num_records").to_pylist()
    sizes = actions.column("size_bytes").to_pylist()
    out = {"rows": sum(int(n or 0) for n in rows), "data_bytes": sum(int(s) for s in sizes), "log_bytes": log_bytes}
    if table in GOLD_TABLES:
        keys = ["symbol"] if table.endswith(ALL_VENUES) else ["exchange", "symbol"]
        out["series"] = lake.read_table(settings, table, columns=keys).group_by(keys).aggregate([]).num_rows
    return out


def _silver_rows(settings: Settings) -> int:
    return lake.count_rows(settings, SILVER_TABLE) or 0


def run(
    stack: Stack,
    tuning: Tuning,
    workload: Workload,
    rate: float,
    seconds: float,
    on_pipeline: Callable[[Pipeline | None], None],
) -> dict[str, Any]:
    settings = stack.run_settings("storage")
    with pipeline(settings, tuning) as running:
        on_pipeline(running)
        pacer = Pacer(settings, workload, rate)
        started = time.time()  # trades, bars and commits are counted from here: the warm-up's too
        pacer.start()
        try:
            if not wait_on(running, lambda: _silver_rows(settings) > 0, WARM_UP_LIMIT_S, POLL_S):
                raise StorageError(f"silver committed nothing within {WARM_UP_LIMIT_S:.0f}s of the start")
            wait_on(running, lambda: pacer.error is not None, seconds, POLL_S)
            if pacer.error is not None:
                raise StorageError(f"the producer failed: {pacer.error!r}") from pacer.error
        finally:
            pacer.stop()
        loaded_s = time.time() - started
        sent = pacer.stats.trades
        caught_up = wait_on(running, lambda: _silver_rows(settings) >= sent, CATCH_UP_S, POLL_S)
        restarts = sum(running.restarts.values())
        # The lake's figures while the layers still run: gold's open bars are in the table as they are at any time.
        objects = prefix_sizes(list_objects(s3_client(settings), settings.lake_bucket), LAYERS_TABLES, ())
        tables = {t: table_figures(settings, t, objects["tables"][t]["log_bytes"]) for t in LAYERS_TABLES}
    on_pipeline(None)
    return summarize(sent, pacer.stats.records, loaded_s, kafka_segment_bytes(stack, settings.kafka_topic), tables) | {
        "rate_trades_per_s": rate,
        "seconds": round(loaded_s, 1),
        "caught_up": caught_up,
        "restarts": restarts,
        "trigger_interval": settings.trigger_interval,
        "tables": tables,
    }


def summarize(
    sent: int, records: int, seconds: float, kafka_bytes: int, tables: dict[str, dict[str, int]]
) -> dict[str, Any]:
    """Bytes per trade per layer, gold's per bar, and each layer's bytes a day at ``DAY_RATES``."""

    def per_row(table: str) -> float:
        return tables[table]["data_bytes"] / max(1, tables[table]["rows"])

    def log_per_s(names: tuple[str, ...]) -> float:
        return sum(tables[t]["log_bytes"] for t in names) / seconds

    per_trade = {
        "kafka": kafka_bytes / sent,
        "bronze": per_row(BRONZE_TABLE) * records / sent,
        "silver": per_row(SILVER_TABLE),
        "quarantine": tables[QUARANTINE_TABLE]["data_bytes"] / sent,  # a row per bad frame, not per trade
    }
    bars = sum(tables[t]["rows"] for t in GOLD_TABLES)
    per_bar = sum(tables[t]["data_bytes"] for t in GOLD_TABLES) / bars if bars else None
    logs = {
        "bronze": log_per_s((BRONZE_TABLE,)),
        "silver": log_per_s((SILVER_TABLE, QUARANTINE_TABLE)),
        "gold": log_per_s(GOLD_TABLES),
    }
    gold_bars_a_day = {t: tables[t].get("series", 0) * DAY_S / BAR_SECONDS[t] for t in GOLD_TABLES}
    gold_day = sum(per_row(t) * n for t, n in gold_bars_a_day.items()) + logs["gold"] * DAY_S

    def day(rate: int) -> dict[str, float]:
        trades = rate * DAY_S
        out = {
            "kafka": per_trade["kafka"] * trades,
            "bronze": per_trade["bronze"] * trades + logs["bronze"] * DAY_S,
            "silver": (per_trade["silver"] + per_trade["quarantine"]) * trades + logs["silver"] * DAY_S,
            "gold": gold_day,
        }
        return {f"{layer}_gib": round(b / 2**30, 3) for layer, b in out.items()}

    return {
        "sent_trades": sent,
        "sent_records": records,
        "kafka_segment_bytes": kafka_bytes,
        "bytes_per_trade": {layer: round(b, 1) for layer, b in per_trade.items()},
        "gold_bytes_per_bar": None if per_bar is None else round(per_bar, 1),
        "gold_bars": bars,
        "gold_bars_a_day": {t: round(n) for t, n in gold_bars_a_day.items()},
        "log_bytes_per_s": {layer: round(b, 1) for layer, b in logs.items()},
        "day": {f"{rate}": day(rate) for rate in DAY_RATES},
    }
