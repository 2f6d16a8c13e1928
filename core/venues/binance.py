"""Binance spot trades over the combined-stream endpoint."""

from __future__ import annotations

import json

from core.venues.base import (
    CONTROL,
    Exchange,
    FrameKind,
    Parsed,
    Timing,
    error,
    number,
    split_concatenated,
    trade_id,
    trades,
)

HOUR = 3600.0


class Binance(Exchange):
    """Binance spot ``<symbol>@trade`` streams, subscribed through the combined-stream URL.

    A trade frame, as received::

        {"stream":"btcusdt@trade","data":{"e":"trade","E":1723161255343,"s":"BTCUSDT","t":3735683259,
         "p":"61837.63000000","q":"0.02000000","T":1723161255342,"m":true,"M":true}}

    ``t`` is the trade id (sequential per symbol), ``E`` the event time in ms, ``T`` the trade time, ``m`` true when
    the buyer was the maker, so the taker sold. The server pings every 20 s and cuts connections that do not pong
    within a minute (websocket-client pongs with the ping's payload), and cuts every connection after 24 h; it
    announces other cuts with a ``serverShutdown`` event.
    """

    name = feed = "binance"
    endpoint = "wss://stream.binance.com:9443"
    timing = Timing(silence=60.0, max_age=23 * HOUR)
    max_symbols_per_connection = 1024  # streams per connection

    def url(self, base_url: str) -> str:
        streams = "/".join(f"{self.venue_symbol(s)}@trade" for s in self.symbols)
        return f"{base_url.rstrip('/')}/stream?streams={streams}"

    @staticmethod
    def venue_symbol(canonical: str) -> str:
        return canonical.replace("-", "").lower()

    @classmethod
    def canonical_of(cls, venue_symbol: str, trade_id: int | None) -> str:
        return split_concatenated(venue_symbol)

    def parse(self, frame: str) -> Parsed:
        message = json.loads(frame)
        if not isinstance(message, dict):
            return CONTROL
        stream = message.get("stream")
        data = message.get("data", message)
        if isinstance(data, dict) and data.get("e") == "serverShutdown":
            return Parsed(FrameKind.RECONNECT, detail="serverShutdown")
        if isinstance(stream, str) and stream.endswith("@trade"):
            symbol = self.canonical(stream.removesuffix("@trade"))
            fields = data if isinstance(data, dict) else {}
            return trades([(symbol, trade_id(fields.get("t")))], number(fields.get("E")))
        if "error" in message:
            return error(json.dumps(message["error"]))
        return CONTROL
