"""Kraken spot trades over WebSocket v2."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import TYPE_CHECKING

from core.venues.base import (
    CONTROL,
    LakeVenue,
    Parsed,
    Timing,
    TradeText,
    compact,
    error,
    iso_us,
    rejected,
    rfc3339_ms,
    trade_id,
    trades,
)

if TYPE_CHECKING:
    from pyspark.sql import Column


class Kraken(LakeVenue):
    """Kraken WebSocket v2, channel ``trade``; one connection carries every pair.

    A trade frame as Kraken documents it (no session is recorded; ``type`` is ``snapshot`` for the recent trades
    sent on subscribing, then ``update``)::

        {"channel":"trade","type":"update","data":[{"symbol":"BTC/USD","side":"buy","price":26420.5,
         "qty":0.00156,"ord_type":"market","trade_id":74315837,"timestamp":"2023-09-25T07:49:37.708706Z"}]}

    ``trade_id`` counts up per pair, so it orders trades of one time; ``side`` is the taker's. Kraken sends
    ``{"channel":"heartbeat"}`` every second and answers ``{"method":"ping"}`` with a pong; it refuses a pair with
    ``"success":false`` and an ``error``.
    """

    name = feed = "kraken"
    endpoint = "wss://ws.kraken.com"
    timing = Timing(silence=10.0, ping_every=30.0)
    max_symbols_per_connection = 1000
    ping_text = '{"method":"ping"}'
    pong_text = '{"method":"pong","time_in":"2023-09-25T07:49:37.708706Z","time_out":"2023-09-25T07:49:37.708736Z"}'
    # Prices and sizes are JSON numbers in v2, read as strings: Spark keeps a number's text, typed later without loss.
    frame_schema = (
        "channel STRING, type STRING, data ARRAY<STRUCT<symbol: STRING, side: STRING, price: STRING, qty: STRING, "
        "trade_id: BIGINT, timestamp: STRING>>"
    )

    def url(self, base_url: str) -> str:
        return f"{base_url.rstrip('/')}/v2"

    def subscribe_messages(self) -> list[str]:
        symbols = [self.venue_symbol(s) for s in self.symbols]
        params = {"channel": "trade", "symbol": symbols, "snapshot": True}
        return [compact({"method": "subscribe", "params": params})]

    @staticmethod
    def venue_symbol(canonical: str) -> str:
        return canonical.replace("-", "/")

    @classmethod
    def canonical_of(cls, venue_symbol: str, trade_id: int | None) -> str:
        return venue_symbol.upper().replace("/", "-")

    def parse(self, frame: str) -> Parsed:
        message = json.loads(frame)
        if message.get("channel") == "trade" and message.get("type") in ("snapshot", "update"):
            items = message["data"]
            pairs = [(self.canonical(item["symbol"]), trade_id(item.get("trade_id"))) for item in items]
            return trades(pairs, rfc3339_ms(items[-1].get("timestamp")) if items else None)
        if message.get("success") is False:
            what = f"{message.get('error')} ({message.get('symbol', message.get('method'))})"
            return rejected(what) if message.get("method") == "subscribe" else error(what)
        if "error" in message:
            return error(str(message["error"]))
        return CONTROL

    @staticmethod
    def spark_trades(message: Column) -> Column:
        from pyspark.sql import functions as F

        from core.venues.spark import trade

        parsed = F.transform(
            message["data"],
            lambda t: trade(
                F.regexp_replace(t["symbol"], "/", "-"),
                t["trade_id"],
                t["trade_id"],
                t["price"],
                t["qty"],
                F.lower(t["side"]),
                F.try_to_timestamp(t["timestamp"]),
            ),
        )
        return F.when(message["channel"] == "trade", parsed)

    @staticmethod
    def render(symbol: str, trades: Sequence[TradeText], time_us: int) -> list[str]:
        pair = symbol.replace("-", "/")
        stamp = iso_us(time_us)
        data = ",".join(
            f'{{"symbol":"{pair}","side":"{"buy" if t.taker_buy else "sell"}","price":{t.price},"qty":{t.size},'
            f'"ord_type":"market","trade_id":{t.trade_id},"timestamp":"{stamp}"}}'
            for t in trades
        )
        return [f'{{"channel":"trade","type":"update","data":[{data}]}}']
