"""Coinbase Advanced Trade market trades."""

from __future__ import annotations

import json

from core.venues.base import CONTROL, Exchange, Parsed, Timing, compact, rejected, rfc3339_ms, trade_id, trades


class Coinbase(Exchange):
    """Coinbase Advanced Trade, channel ``market_trades``, plus ``heartbeats`` so quiet connections stay open.

    A trade frame (the first is a ``snapshot`` of recent trades, newest first; then ``update`` events)::

        {"channel":"market_trades","timestamp":"2026-08-09T21:05:48.251397169Z","sequence_num":9,"events":[
         {"type":"update","trades":[{"product_id":"BTC-USD","trade_id":"1068572091","price":"65083.67",
         "size":"0.01034361","time":"2026-08-09T21:05:48.167634Z","side":"SELL"}]}]}

    ``side`` is the maker's: the taker did the opposite. ``trade_id`` counts up per product but may arrive slightly
    out of order; ``sequence_num`` counts per connection across channels, so a jump in it loses nothing.
    """

    name = feed = "coinbase"
    endpoint = "wss://advanced-trade-ws.coinbase.com"
    timing = Timing(silence=10.0)  # heartbeats come every second
    max_symbols_per_connection = 1000

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
