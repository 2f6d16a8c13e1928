"""Binance spot trades over the combined-stream endpoint."""

from __future__ import annotations

import json

from ingestion.exchanges.base import Exchange, FrameKind


class Binance(Exchange):
    """Binance spot ``<symbol>@trade`` streams, subscribed through the combined-stream URL.

    A trade frame, as received::

        {"stream":"btcusdt@trade","data":{"e":"trade","E":1723161255343,"s":"BTCUSDT","t":3735683259,
         "p":"61837.63000000","q":"0.02000000","T":1723161255342,"m":true,"M":true}}

    ``t`` is the trade id (sequential per symbol), ``T`` the trade time in ms, ``m`` true when the buyer was the
    maker, so the taker sold.
    """

    name = "binance"

    def url(self, base_url: str) -> str:
        streams = "/".join(f"{self.venue_symbol(s)}@trade" for s in self.symbols)
        return f"{base_url.rstrip('/')}/stream?streams={streams}"

    @staticmethod
    def venue_symbol(canonical: str) -> str:
        return canonical.replace("-", "").lower()

    def classify(self, frame: str) -> tuple[FrameKind, str | None]:
        try:
            message = json.loads(frame)
        except ValueError:
            return FrameKind.ERROR, None
        stream = message.get("stream") if isinstance(message, dict) else None
        if isinstance(stream, str) and stream.endswith("@trade"):
            return FrameKind.TRADE, self.canonical(stream.removesuffix("@trade"))
        if isinstance(message, dict) and "error" in message:
            return FrameKind.ERROR, None
        return FrameKind.CONTROL, None
