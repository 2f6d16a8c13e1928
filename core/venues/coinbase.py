"""Coinbase Advanced Trade market trades."""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
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
    iso_us,
    rejected,
    rfc3339_ms,
    rfc3339_us,
    trade_id,
    trades,
)

if TYPE_CHECKING:
    from pyspark.sql import Column

TAKER_OF_MAKER = {"BUY": "sell", "SELL": "buy"}  # Coinbase reports the maker's side


class Coinbase(LakeVenue):
    """Coinbase Advanced Trade, channel ``market_trades``, plus ``heartbeats`` so quiet connections stay open.

    A trade frame (the first is a ``snapshot`` of recent trades, newest first; then ``update`` events)::

        {"channel":"market_trades","timestamp":"2026-08-09T21:05:48.251397169Z","sequence_num":9,"events":[
         {"type":"update","trades":[{"product_id":"BTC-USD","trade_id":"1068572091","price":"65083.67",
         "size":"0.01034361","time":"2026-08-09T21:05:48.167634Z","side":"SELL"}]}]}

    ``side`` is the maker's: the taker did the opposite. ``trade_id`` counts up per product but may arrive slightly
    out of order, and a frame lists its trades newest first: the id, not the frame, orders trades of one time (a
    taker filling several makers makes several). ``sequence_num`` counts per connection across channels, so a jump
    in it loses nothing.

    Gaps are filled from the public market trades, ``GET /api/v3/brokerage/market/products/BTC-USD/ticker?limit=1000``
    (no key; public endpoints allow 10 requests a second per IP): only the latest trades, newest first, ``side`` the
    maker's as on the WebSocket, so only a gap among the latest thousand trades can be filled::

        {"trades":[{"trade_id":"1068572091","product_id":"BTC-USD","price":"65083.67","size":"0.01034361",
         "time":"2026-08-09T21:05:48.167634Z","side":"SELL","bid":"","ask":""}],"best_bid":"65083.66",
         "best_ask":"65083.67"}

    An error is an object with ``error`` and ``message``.
    """

    name = feed = "coinbase"
    endpoint = "wss://advanced-trade-ws.coinbase.com"
    timing = Timing(silence=10.0)  # heartbeats come every second
    max_symbols_per_connection = 1000
    frame_schema = (
        "channel STRING, events ARRAY<STRUCT<type: STRING, trades: ARRAY<STRUCT<product_id: STRING, trade_id: STRING, "
        "price: STRING, size: STRING, time: STRING, side: STRING>>>>"
    )

    rest = RestFill("https://api.coinbase.com", page=1000, per_second=5.0, by="recent", reach="the latest 1,000 trades")
    REST_PATH = re.compile(r"/api/v3/brokerage/market/products/([^/]+)/ticker")

    def url(self, base_url: str) -> str:
        return base_url.rstrip("/")

    def subscribe_messages(self) -> list[str]:
        products = [self.venue_symbol(s) for s in self.symbols]
        return [
            compact({"type": "subscribe", "product_ids": products, "channel": channel})
            for channel in ("market_trades", "heartbeats")
        ]

    @staticmethod
    def venue_symbol(canonical: str) -> str:
        return canonical

    def parse(self, frame: str) -> Parsed:
        message = json.loads(frame)
        channel = message.get("channel")
        if channel == "market_trades":
            pairs = [
                (self.canonical(trade["product_id"]), trade_id(trade.get("trade_id")))
                for event in message["events"]
                for trade in event.get("trades") or ()
            ]
            return trades(pairs, rfc3339_ms(message.get("timestamp")))
        if message.get("type") == "error":
            # Subscriptions are the only requests the ingestor makes.
            return rejected(f"{message.get('message')}: {message.get('reason', '')}".rstrip(": "))
        return CONTROL

    @staticmethod
    def spark_trades(message: Column) -> Column:
        from pyspark.sql import functions as F

        from core.venues.spark import opposite, trade

        parsed = F.transform(
            F.flatten(F.transform(message["events"], lambda e: e["trades"])),
            lambda t: trade(
                t["product_id"],
                t["trade_id"],
                t["trade_id"].try_cast("long"),
                t["price"],
                t["size"],
                opposite(t["side"]),
                F.try_to_timestamp(t["time"]),
            ),
        )
        return F.when(message["channel"] == "market_trades", parsed)

    @staticmethod
    def render(symbol: str, trades: Sequence[TradeText], time_us: int) -> list[str]:
        stamp = iso_us(time_us)
        data = ",".join(
            f'{{"product_id":"{symbol}","trade_id":"{t.trade_id}","price":"{t.price}","size":"{t.size}",'
            f'"time":"{stamp}","side":"{"SELL" if t.taker_buy else "BUY"}"}}'
            for t in trades
        )
        return [
            f'{{"channel":"market_trades","client_id":"","timestamp":"{stamp}","sequence_num":{trades[0].trade_id},'
            f'"events":[{{"type":"update","trades":[{data}]}}]}}'
        ]

    @classmethod
    def rest_request(cls, query: RestQuery) -> str:
        return f"/api/v3/brokerage/market/products/{query.symbol}/ticker?limit={query.limit}"

    @classmethod
    def rest_query(cls, path: str, params: dict[str, str]) -> RestQuery | None:
        matched = cls.REST_PATH.fullmatch(path)
        return RestQuery(matched[1], int(params["limit"])) if matched else None

    @classmethod
    def rest_trades(cls, body: str) -> list[RestTrade]:
        answer = json.loads(body)
        if "error" in answer:
            raise RestError(f"{answer['error']}: {answer.get('message', '')}")
        found = [
            RestTrade(int(t["trade_id"]), t["price"], t["size"], t["side"] == "SELL", rfc3339_us(t["time"]))
            for t in answer["trades"]
        ]
        return sorted(found, key=lambda t: t.trade_id)

    @classmethod
    def rest_answer(cls, symbol: str, trades: Sequence[RestTrade]) -> str:
        listed = [
            {
                "trade_id": str(t.trade_id),
                "product_id": symbol,
                "price": t.price,
                "size": t.size,
                "time": iso_us(t.time_us),
                "side": "SELL" if t.taker_buy else "BUY",
                "bid": "",
                "ask": "",
            }
            for t in reversed(trades)
        ]
        return compact({"trades": listed, "best_bid": "", "best_ask": ""})

    @classmethod
    def listed(cls, frame: str) -> list[tuple[str, RestTrade]]:
        message = json.loads(frame)
        if message.get("channel") != "market_trades":
            return []
        return [
            (
                t["product_id"],
                RestTrade(int(t["trade_id"]), t["price"], t["size"], t["side"] == "SELL", rfc3339_us(t["time"])),
            )
            for event in message["events"]
            for t in event.get("trades") or ()
        ]
