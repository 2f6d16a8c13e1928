"""Column helpers the venues' Spark parsers share; imported by those parsers when they run, so only where Spark is."""

from __future__ import annotations

from pyspark.sql import Column
from pyspark.sql import functions as F


def trade(
    symbol: Column,
    trade_id: Column,
    number: Column,
    price: Column,
    size: Column,
    side: Column,
    event_time: Column,
) -> Column:
    """One trade as every venue's parser gives it, all strings but the number and the time; the symbol is null where
    the frame has only the venue's unsplit spelling (BTCUSDT), and silver takes the Kafka key's canonical one instead.

    ``number`` orders trades of one symbol at one instant: the trade id as a long where the venue numbers its trades
    in order per symbol, null where it does not (then the trades' order in Kafka and in the frame, which the parser
    gives oldest first). Ids are compared as numbers: as text, "9" would come after "10".
    """
    return F.struct(
        symbol.alias("symbol"),
        trade_id.cast("string").alias("trade_id"),
        number.alias("number"),
        price.alias("price"),
        size.alias("size"),
        side.alias("side"),
        event_time.alias("event_time"),
    )


def opposite(maker_side: Column) -> Column:
    """The taker's side of a venue that reports the maker's as BUY or SELL."""
    return F.when(maker_side == "BUY", "sell").when(maker_side == "SELL", "buy")
