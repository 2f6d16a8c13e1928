"""Column helpers the venues' Spark parsers share; imported by those parsers when they run, so only where Spark is."""

from __future__ import annotations

from pyspark.sql import Column
from pyspark.sql import functions as F


def trade(symbol: Column, trade_id: Column, price: Column, size: Column, side: Column, event_time: Column) -> Column:
    """One trade as every venue's parser gives it, all strings but the time; the symbol is null where the frame has only
    the venue's unsplit spelling (BTCUSDT), and silver takes the Kafka key's canonical one instead."""
    return F.struct(
        symbol.alias("symbol"),
        trade_id.cast("string").alias("trade_id"),
        price.alias("price"),
        size.alias("size"),
        side.alias("side"),
        event_time.alias("event_time"),
    )


def opposite(maker_side: Column) -> Column:
    """The taker's side of a venue that reports the maker's as BUY or SELL."""
    return F.when(maker_side == "BUY", "sell").when(maker_side == "SELL", "buy")
