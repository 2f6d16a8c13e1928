"""Gold bars as the page draws them: one candle series per venue and symbol, and the spread between venues."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from datetime import UTC
from typing import Any

from cryptolake.status import price_decimals

MAX_BARS = 500  # per series: the newest, what a chart shows at once


def candle(bar: dict[str, Any]) -> dict[str, Any]:
    """One bar in lightweight-charts' terms: time in seconds since the epoch (UTC), prices and volume as numbers."""
    start = bar["bar_start"]
    return {
        "time": int(start.replace(tzinfo=start.tzinfo or UTC).timestamp()),  # the lake's times are UTC
        **{k: float(bar[k]) for k in ("open", "high", "low", "close", "volume", "vwap")},
        "trades": bar["trades"],
    }


def series(bars: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    """Bars (oldest first) grouped by venue and symbol, sorted by symbol then venue, each its newest MAX_BARS."""
    grouped: dict[tuple[str, str], list[dict[str, Any]]] = defaultdict(list)
    decimals: dict[str, int] = defaultdict(int)  # per symbol: its prices at their own precision
    for bar in bars:
        grouped[bar["symbol"], bar["exchange"]].append(candle(bar))
        places = max(price_decimals(bar[k]) for k in ("open", "high", "low", "close"))
        decimals[bar["symbol"]] = max(decimals[bar["symbol"]], places)
    return [
        {
            "symbol": symbol,
            "exchange": exchange,
            "decimals": decimals[symbol],
            "bars": grouped[symbol, exchange][-MAX_BARS:],
        }
        for symbol, exchange in sorted(grouped)
    ]


def spreads(candles: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Per symbol quoted on two venues or more: at each bar time that several venues have, the highest close less
    the lowest, and the venues of each."""
    closes: dict[str, dict[int, dict[str, float]]] = defaultdict(lambda: defaultdict(dict))
    for one in candles:
        for bar in one["bars"]:
            closes[one["symbol"]][bar["time"]][one["exchange"]] = bar["close"]
    found = []
    for symbol in sorted(closes):
        points = []
        for time, by_venue in sorted(closes[symbol].items()):
            if len(by_venue) < 2:
                continue
            high, low = max(by_venue, key=by_venue.__getitem__), min(by_venue, key=by_venue.__getitem__)
            points.append({"time": time, "value": by_venue[high] - by_venue[low], "high": high, "low": low})
        if points:
            found.append({"symbol": symbol, "points": points})
    return found
