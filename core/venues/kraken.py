"""Kraken spot trades over WebSocket v2."""

from __future__ import annotations

import json
from collections.abc import Sequence
from decimal import Decimal
from typing import TYPE_CHECKING

from core.venues.base import (
    CONTROL,
    LakeVenue,
    Parsed,
    RestError,
    RestFill,
    RestQuery,
    RestTrade,
    Timing,
    TradeText,
    compact,
    error,
    iso_us,
    rejected,
    rfc3339_ms,
    rfc3339_us,
    trade_id,
    trades,
)
from core.venues.kraken_v1 import KrakenV1

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

    Gaps are filled from ``GET /0/public/Trades?pair=XBTUSD&since=1695628177000000000&count=1000`` (public, no key;
    Kraken allows about one public call a second), which pages by time (``since``, exclusive, in ns) through the pair's
    whole history; each trade is price, volume, time in s, side (the taker's), order type, misc, trade id::

        {"error":[],"result":{"XXBTZUSD":[["26420.50000","0.00156000",1695628177.708706,"b","m","",74315837]],
         "last":"1695628177708706000"}}

    An error is a non-empty ``error`` list, e.g. ``["EQuery:Unknown asset pair"]``.
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

    rest = RestFill(
        "https://api.kraken.com", page=1000, per_second=0.5, by="time", reach="any trade of the pair, by time"
    )
    REST_PATH = "/0/public/Trades"

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

    @classmethod
    def rest_symbol(cls, canonical: str) -> str:
        """REST's spelling of a pair: v1's assets without the slash (BTC-USD -> XBTUSD)."""
        return KrakenV1.venue_symbol(canonical).replace("/", "")

    @classmethod
    def rest_request(cls, query: RestQuery) -> str:
        since_ns = (query.after_us or 0) * 1_000
        return f"{cls.REST_PATH}?pair={cls.rest_symbol(query.symbol)}&since={since_ns}&count={query.limit}"

    @classmethod
    def rest_query(cls, path: str, params: dict[str, str]) -> RestQuery | None:
        if path != cls.REST_PATH:
            return None
        after_us = int(params["since"]) // 1_000 if "since" in params else None
        return RestQuery(params["pair"], int(params.get("count", "1000")), after_us=after_us)

    @classmethod
    def rest_trades(cls, body: str) -> list[RestTrade]:
        answer = json.loads(body, parse_float=Decimal)
        if answer.get("error"):
            raise RestError(", ".join(map(str, answer["error"])))
        listed = next(v for k, v in answer["result"].items() if k != "last")
        found = [RestTrade(int(t[6]), t[0], t[1], t[3] == "b", int(Decimal(t[2]) * 1_000_000)) for t in listed]
        return sorted(found, key=lambda t: t.trade_id)

    @classmethod
    def rest_answer(cls, symbol: str, trades: Sequence[RestTrade]) -> str:
        # The times as JSON numbers with every microsecond, which a float would not keep.
        rows = ",".join(
            f'["{t.price}","{t.size}",{t.time_us // 1_000_000}.{t.time_us % 1_000_000:06d},'
            f'"{"b" if t.taker_buy else "s"}","l","",{t.trade_id}]'
            for t in trades
        )
        last = trades[-1].time_us * 1_000 if trades else 0
        return f'{{"error":[],"result":{{"{cls.rest_symbol(symbol)}":[{rows}],"last":"{last}"}}}}'

    @classmethod
    def listed(cls, frame: str) -> list[tuple[str, RestTrade]]:
        message = json.loads(frame, parse_float=str)  # prices and sizes keep their text
        if message.get("channel") != "trade" or message.get("type") not in ("snapshot", "update"):
            return []
        return [
            (
                cls.canonical_of(t["symbol"], None),
                RestTrade(
                    int(t["trade_id"]),
                    str(t["price"]),
                    str(t["qty"]),
                    t["side"] == "buy",
                    rfc3339_us(t["timestamp"]),
                ),
            )
            for t in message["data"]
        ]
