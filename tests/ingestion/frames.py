"""Venue frames for tests: Binance's as its trade stream sends them, Kraken v2's as Kraken documents them."""

from __future__ import annotations

import json
from typing import Any


def compact(message: Any) -> str:
    return json.dumps(message, separators=(",", ":"))


def binance_trade(trade_id: int, stream: str = "btcusdt@trade", event_ms: int = 1723161255343) -> str:
    symbol = stream.split("@")[0].upper()
    data = {"e": "trade", "E": event_ms, "s": symbol, "t": trade_id, "p": "61837.63000000", "q": "0.02000000"}
    return compact({"stream": stream, "data": {**data, "T": event_ms - 1, "m": True, "M": True}})


def kraken_trades(symbol: str, ids: range | list[int], kind: str = "update") -> str:
    """A v2 ``trade`` frame: price and qty are JSON numbers, timestamps RFC 3339."""
    data = [
        {
            "symbol": symbol,
            "side": "buy" if trade_id % 2 else "sell",
            "price": 26420.5 + trade_id / 10,
            "qty": 0.00156,
            "ord_type": "market",
            "trade_id": trade_id,
            "timestamp": f"2023-09-25T07:49:{trade_id % 60:02d}.708706Z",
        }
        for trade_id in ids
    ]
    return compact({"channel": "trade", "type": kind, "data": data})


def kraken_ack(symbol: str) -> str:
    return compact(
        {
            "method": "subscribe",
            "result": {"channel": "trade", "snapshot": True, "symbol": symbol},
            "success": True,
            "time_in": "2023-09-25T09:04:31.742599Z",
            "time_out": "2023-09-25T09:04:31.742648Z",
        }
    )


def kraken_rejection(symbol: str) -> str:
    return compact(
        {
            "error": "Currency pair not supported",
            "method": "subscribe",
            "success": False,
            "symbol": symbol,
            "time_in": "2023-09-25T09:04:31.742599Z",
            "time_out": "2023-09-25T09:04:31.742648Z",
        }
    )


KRAKEN_HEARTBEAT = '{"channel":"heartbeat"}'
KRAKEN_STATUS = compact(
    {
        "channel": "status",
        "type": "update",
        "data": [{"version": "2.0.0", "system": "online", "api_version": "v2", "connection_id": 1637962240474281856}],
    }
)


def kraken_session(symbols: dict[str, int], per_frame: int = 3) -> list[str]:
    """What Kraken sends a v2 client subscribing to ``symbols`` (pair -> first trade id): status, acks, a snapshot
    of each pair's last trades, then updates between heartbeats."""
    frames = [KRAKEN_STATUS]
    for symbol, first in symbols.items():
        frames += [kraken_ack(symbol), kraken_trades(symbol, range(first, first + 5), "snapshot")]
    for step in range(10):
        for symbol, first in symbols.items():
            start = first + 5 + step * per_frame
            frames.append(kraken_trades(symbol, range(start, start + per_frame)))
        frames.append(KRAKEN_HEARTBEAT)
    return frames


def okx_trade(trade_id: int, inst_id: str = "BTC-USDT") -> str:
    trade = {"instId": inst_id, "tradeId": str(trade_id), "px": "30236", "sz": "0.0002", "side": "buy"}
    return compact({"arg": {"channel": "trades", "instId": inst_id}, "data": [{**trade, "ts": "1652459224818"}]})


def trade_id(frame: str) -> int:
    """The id of the one trade of a Binance or OKX frame."""
    data = json.loads(frame)["data"]
    return int(data["t"]) if isinstance(data, dict) else int(data[0]["tradeId"])
