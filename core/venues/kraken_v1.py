"""Kraken spot trades over WebSocket v1, the protocol of older recordings."""

from __future__ import annotations

import json

from core.venues.base import CONTROL, Exchange, Parsed, Timing, compact, error, number, rejected, trades

# v1 spells a few assets the old way; v2 and everyone else use the common codes.
V1_ASSETS = {"BTC": "XBT", "DOGE": "XDG"}
COMMON_ASSETS = {v: k for k, v in V1_ASSETS.items()}


class KrakenV1(Exchange):
    """Kraken WebSocket v1, subscription ``trade``: trades arrive as JSON arrays without trade ids.

    A trade frame: channel id, the trades (price, volume, time in s, side, order type, misc), channel, pair::

        [993,[["354.11000000","0.89594024","1618678142.557535","s","l",""]],"trade","XMR/USD"]

    Events are objects: ``heartbeat`` every second when idle, ``systemStatus`` (its ``connectionID`` does not fit
    in a signed 64-bit integer), ``subscriptionStatus`` with ``status`` ``subscribed`` or ``error``.
    """

    name = "kraken"
    feed = "kraken-v1"
    endpoint = "wss://ws.kraken.com"
    timing = Timing(silence=10.0)
    max_symbols_per_connection = 1000

    def url(self, base_url: str) -> str:
        return base_url.rstrip("/")

    def subscribe_messages(self) -> list[str]:
        pairs = [self.venue_symbol(s) for s in self.symbols]
        return [compact({"event": "subscribe", "pair": pairs, "subscription": {"name": "trade"}})]

    @staticmethod
    def venue_symbol(canonical: str) -> str:
        return "/".join(V1_ASSETS.get(asset, asset) for asset in canonical.split("-"))

    @classmethod
    def canonical_of(cls, venue_symbol: str, trade_id: int | None) -> str:
        return "-".join(COMMON_ASSETS.get(asset, asset) for asset in venue_symbol.upper().split("/"))

    def parse(self, frame: str) -> Parsed:
        message = json.loads(frame)
        if isinstance(message, list):
            if len(message) >= 4 and message[-2] == "trade":
                symbol = self.canonical(message[-1])
                items = message[1] if isinstance(message[1], list) else []
                newest = items[-1] if items and isinstance(items[-1], list) and len(items[-1]) > 2 else None
                seconds = number(newest[2]) if newest is not None else None  # trade time, in seconds
                venue_ms = seconds * 1000 if seconds is not None else None
                return trades([(symbol, None)] * max(1, len(items)), venue_ms)
            return CONTROL
        event = message.get("event")
        if event == "subscriptionStatus" and message.get("status") == "error":
            return rejected(f"{message.get('errorMessage')} ({message.get('pair')})")
        if event == "error" or "errorMessage" in message:
            return error(str(message.get("errorMessage")))
        return CONTROL
