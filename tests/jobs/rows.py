"""Bronze rows as the bronze job writes them, and gold's bars keyed as the reference keys them, for transform tests."""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Any

from pyspark.sql import DataFrame, SparkSession

from jobs import schemas
from tests import reference

RECEIVED_US = 1_723_161_256_000_000  # 2024-08-08 23:54:16 UTC, just after the recorded trades below


def bronze_row(
    frame: str,
    offset: int,
    *,
    key: str = "binance:BTC-USDT",
    exchange: str | None = "binance",
    received_us: int | None = RECEIVED_US,
    kafka_us: int | None = None,
    replay: bool = False,
    backfill: bool = False,
) -> tuple[Any, ...]:
    headers = [] if received_us is None else [("received_at_us", str(received_us).encode())]
    if exchange is not None:
        headers.insert(0, ("exchange", exchange.encode()))
    if replay:
        headers.append(("replay", b"1"))
    if backfill:
        headers.append(("backfill", b"1"))
    kafka_us = kafka_us or received_us or RECEIVED_US
    kafka_time = datetime.fromtimestamp(kafka_us / 1e6, UTC).replace(tzinfo=None)
    return (key.encode(), frame.encode(), "crypto.trades", 0, offset, kafka_time, headers, date(2024, 8, 8))


def bronze(spark: SparkSession, rows: list[tuple[Any, ...]]) -> DataFrame:
    return spark.createDataFrame(rows, schemas.BRONZE)


def reference_bars(gold: DataFrame) -> dict[tuple[str, str, int], reference.Bar]:
    """Gold's bars per exchange as (exchange, symbol, bar start in us) -> the bar, as ``reference.bars`` gives them."""
    return {
        (r.exchange, r.symbol, int(r.bar_start.replace(tzinfo=UTC).timestamp()) * 1_000_000): reference.Bar(
            r.open, r.high, r.low, r.close, r.volume, r.quote_volume, r.vwap, r.trades, r.buy_volume, r.sell_volume,
            r.first_trade_id, r.last_trade_id)
        for r in gold.collect()
    }  # fmt: skip
