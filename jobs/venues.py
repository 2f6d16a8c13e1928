"""Spark-side parsers of each venue's trade frames, all giving the same array of trades.

A venue's parser is the JSON schema of its frames and a function from the frame parsed with that schema to
``array<PARSED_TRADE>``: null for anything but a trade frame of that venue (unparseable text, an ack, a heartbeat),
an empty array for a trade frame that carries no trade.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F
from pyspark.sql.types import ArrayType, StructType

from jobs import schemas


@dataclass(frozen=True)
class Parser:
    frame: StructType
    trades: Callable[[Column], Column]


def _trade(symbol: Column, trade_id: Column, price: Column, size: Column, side: Column, event_time: Column) -> Column:
    return F.struct(
        symbol.alias("symbol"),
        trade_id.cast("string").alias("trade_id"),
        price.alias("price"),
        size.alias("size"),
        side.alias("side"),
        event_time.alias("event_time"),
    )


def _opposite(maker_side: Column) -> Column:
    return F.when(maker_side == "BUY", "sell").when(maker_side == "SELL", "buy")


def binance(message: Column) -> Column:
    """``{"stream":"btcusdt@trade","data":{"e":"trade","t":3735683259,"p":"61837.63000000","q":"0.02000000",
    "T":1723161255342,"m":true,...}}``; ``m``: the buyer was the maker, so the taker sold."""
    data = message["data"].cast(schemas.BINANCE_TRADE)
    trade = _trade(
        F.lit(None).cast("string"),
        data["trade_id"],
        data["price"],
        data["quantity"],
        F.when(data["buyer_is_maker"], "sell").when(~data["buyer_is_maker"], "buy"),
        F.timestamp_millis(data["trade_time"]),
    )
    return F.when(data.isNotNull(), F.array(trade))


def kraken(message: Column) -> Column:
    """WebSocket v2 ``{"channel":"trade","type":"update","data":[{"symbol":"BTC/USD","side":"buy","price":67000.1,
    "qty":0.01,"ord_type":"market","trade_id":123,"timestamp":"2023-09-25T07:49:37.708706Z"}]}``; side is the
    taker's."""
    trades = F.transform(
        message["data"],
        lambda t: _trade(
            F.regexp_replace(t["symbol"], "/", "-"),
            t["trade_id"],
            t["price"],
            t["qty"],
            F.lower(t["side"]),
            F.try_to_timestamp(t["timestamp"]),
        ),
    )
    return F.when(message["channel"] == "trade", trades)


def coinbase(message: Column) -> Column:
    """Advanced Trade ``{"channel":"market_trades","events":[{"type":"update","trades":[{"product_id":"BTC-USD",
    "trade_id":"1068572090","price":"65083.67","size":"0.002186","time":"2026-08-09T21:05:42.514318Z",
    "side":"SELL"}]}]}``; ``side`` is the maker's, so the taker's is the opposite."""
    trades = F.transform(
        F.flatten(F.transform(message["events"], lambda e: e["trades"])),
        lambda t: _trade(
            t["product_id"], t["trade_id"], t["price"], t["size"], _opposite(t["side"]), F.try_to_timestamp(t["time"])
        ),
    )
    return F.when(message["channel"] == "market_trades", trades)


def bybit(message: Column) -> Column:
    """v5 ``{"topic":"publicTrade.BTCUSDT","type":"snapshot","data":[{"i":"2290000001189048101","T":1786310822605,
    "p":"65140.5","v":"0.002705","S":"Buy","s":"BTCUSDT",...}]}``; ``S`` is the taker's side."""
    trades = F.transform(
        message["data"].cast(ArrayType(schemas.BYBIT_TRADE)),
        lambda t: _trade(
            F.lit(None).cast("string"),
            t["trade_id"],
            t["price"],
            t["volume"],
            F.lower(t["taker_side"]),
            F.timestamp_millis(t["trade_time"]),
        ),
    )
    return F.when(message["topic"].startswith("publicTrade."), trades)


def okx(message: Column) -> Column:
    """v5 ``{"arg":{"channel":"trades","instId":"BTC-USDT"},"data":[{"instId":"BTC-USDT","tradeId":"7849",
    "px":"30218.8","sz":"1","side":"buy","ts":"1652459199958"}]}``; side is the taker's."""
    trades = F.transform(
        message["data"],
        lambda t: _trade(
            t["instId"], t["tradeId"], t["px"], t["sz"], F.lower(t["side"]),
            F.timestamp_millis(t["ts"].try_cast("long")),
        ),
    )  # fmt: skip
    return F.when((message["arg"]["channel"] == "trades") & message["data"].isNotNull(), trades)


PARSERS: dict[str, Parser] = {
    "binance": Parser(schemas.BINANCE_FRAME, binance),
    "kraken": Parser(schemas.KRAKEN_FRAME, kraken),
    "coinbase": Parser(schemas.COINBASE_FRAME, coinbase),
    "bybit": Parser(schemas.BYBIT_FRAME, bybit),
    "okx": Parser(schemas.OKX_FRAME, okx),
}


def with_trades(frames: DataFrame, exchange: str, frame: str) -> DataFrame:
    """``frames`` with a ``trades`` column: the trades of column ``frame``, by the parser of column ``exchange``.

    Each frame is parsed once, by its own venue's schema only.
    """
    parsed = {name: f"_{name}_frame" for name in PARSERS}
    return (
        frames
        # A column of its own for each venue's parse; only the row's venue fills it.
        .select(
            "*",
            *(
                F.when(F.col(exchange) == name, F.from_json(F.col(frame).cast("string"), parser.frame)).alias(column)
                for (name, parser), column in zip(PARSERS.items(), parsed.values(), strict=True)
            ),
        )
        .withColumn("trades", F.coalesce(*(PARSERS[name].trades(F.col(column)) for name, column in parsed.items())))
        .drop(*parsed.values())
    )
