"""Coinbase Exchange's feed, the protocol of older recordings."""

from __future__ import annotations

import json

from core.venues.base import CONTROL, Exchange, Parsed, Timing, compact, rejected, rfc3339_ms, trade_id, trades


class CoinbaseExchange(Exchange):
    """Coinbase Exchange (the former Pro) feed, channels ``matches`` and ``heartbeat``: one trade per frame.

    A trade frame (``last_match`` is the product's latest trade, sent once on subscribing)::

        {"type":"match","trade_id":280232,"maker_order_id":"2a0da34e-61f7-4c36-88e5-c9dd15927b16",
         "taker_order_id":"3c82abaa-c01e-4608-be59-6a1e69742891","side":"sell","size":"985","price":"0.00001305",
         "product_id":"SKL-BTC","sequence":177100030,"time":"2021-04-17T16:43:37.089723Z"}

    ``side`` is the maker's; ``trade_id`` counts up per product.
    """

    name = "coinbase"
    feed = "coinbase-exchange"
    endpoint = "wss://ws-feed.exchange.coinbase.com"
    timing = Timing(silence=10.0)  # one heartbeat a second per product
    max_symbols_per_connection = 1000

    def url(self, base_url: str) -> str:
        return base_url.rstrip("/")

    def subscribe_messages(self) -> list[str]:
        products = [self.venue_symbol(s) for s in self.symbols]
        return [compact({"type": "subscribe", "product_ids": products, "channels": ["matches", "heartbeat"]})]

    @staticmethod
    def venue_symbol(canonical: str) -> str:
        return canonical

    def parse(self, frame: str) -> Parsed:
        message = json.loads(frame)
        kind = message.get("type")
        if kind in ("match", "last_match"):
            symbol = self.canonical(message["product_id"])
            return trades([(symbol, trade_id(message.get("trade_id")))], rfc3339_ms(message.get("time")))
        if kind == "error":
            return rejected(f"{message.get('message')}: {message.get('reason', '')}".rstrip(": "))
        return CONTROL
