"""Kraken spot trades over WebSocket v2."""

from __future__ import annotations

import json

from core.venues.base import (
    CONTROL,
    Exchange,
    Parsed,
    Timing,
    compact,
    error,
    rejected,
    rfc3339_ms,
    trade_id,
    trades,
)


class Kraken(Exchange):
    """Kraken WebSocket v2, channel ``trade``; one connection carries every pair.

    A trade frame as Kraken documents it (no session is recorded; ``type`` is ``snapshot`` for the recent trades
    sent on subscribing, then ``update``)::

        {"channel":"trade","type":"update","data":[{"symbol":"BTC/USD","side":"buy","price":26420.5,
         "qty":0.00156,"ord_type":"market","trade_id":74315837,"timestamp":"2023-09-25T07:49:37.708706Z"}]}

    ``trade_id`` counts up per pair; ``side`` is the taker's. Kraken sends ``{"channel":"heartbeat"}`` every second
    and answers ``{"method":"ping"}`` with a pong; it refuses a pair with ``"success":false`` and an ``error``.
    """

    name = feed = "kraken"
    endpoint = "wss://ws.kraken.com"
    timing = Timing(silence=10.0, ping_every=30.0)
    max_symbols_per_connection = 1000
    ping_text = '{"method":"ping"}'
    pong_text = '{"method":"pong","time_in":"2023-09-25T07:49:37.708706Z","time_out":"2023-09-25T07:49:37.708736Z"}'

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
