"""Plain-Python trades and bars, written apart from the Spark jobs, for the tests to compare them with."""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Any

from cryptolake.venue import synthetic

US_PER_MS = 1_000


@dataclass(frozen=True)
class Trade:
    exchange: str
    symbol: str
    trade_id: str
    price: Decimal
    size: Decimal
    side: str  # the taker's: buy or sell
    time_us: int
    # The venue's own order of its trades, as Kafka keeps it: the frame's position in the stream, then the trade's
    # in the frame. It orders trades; it is not part of what a trade is.
    seq: tuple[int, int] = field(default=(0, 0), compare=False, repr=False)


@dataclass(frozen=True)
class Bar:
    open: Decimal
    high: Decimal
    low: Decimal
    close: Decimal
    volume: Decimal
    quote_volume: Decimal
    vwap: float
    trades: int
    buy_volume: Decimal
    sell_volume: Decimal
    first_trade_id: str
    last_trade_id: str


def from_synthetic(trade: synthetic.Trade, exchange: str = "binance") -> Trade:
    """A synthetic venue's trade, as the reference sees a Binance trade."""
    side = "sell" if trade.buyer_is_maker else "buy"
    return Trade(
        exchange,
        trade.symbol,
        str(trade.trade_id),
        trade.price,
        trade.size,
        side,
        trade.time_ms * US_PER_MS,
        (trade.trade_id, 0),  # the venue sends each symbol's trades one a frame, in id order
    )


def _iso_us(text: str) -> int:
    moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    return int(moment.timestamp()) * 1_000_000 + moment.microsecond


def trades_of(exchange: str, raw: str, key_symbol: str, position: int = 0) -> list[Trade] | None:
    """The trades of one frame, or None if it is no trade frame of ``exchange``; ``position``: the frame's in its
    stream."""
    message: Any = json.loads(raw)
    rows: list[tuple[str, Any, Any, Any, str, int]] = []  # symbol, id, price, size, taker side, time in us
    if exchange == "binance":
        if "stream" not in message:
            return None
        d = message["data"]
        rows.append((key_symbol, d["t"], d["p"], d["q"], "sell" if d["m"] else "buy", d["T"] * US_PER_MS))
    elif exchange == "kraken":
        if message.get("channel") != "trade":
            return None
        for d in message["data"]:
            rows.append((d["symbol"].replace("/", "-"), d["trade_id"], d["price"], d["qty"], d["side"],
                         _iso_us(d["timestamp"])))  # fmt: skip
    elif exchange == "coinbase":
        if message.get("channel") != "market_trades":
            return None
        for event in message["events"]:
            for d in event["trades"]:
                taker = {"BUY": "sell", "SELL": "buy"}[d["side"]]  # Coinbase reports the maker's side
                rows.append((d["product_id"], d["trade_id"], d["price"], d["size"], taker, _iso_us(d["time"])))
    elif exchange == "bybit":
        if not message.get("topic", "").startswith("publicTrade."):
            return None
        for d in message["data"]:
            rows.append((key_symbol, d["i"], d["p"], d["v"], d["S"].lower(), d["T"] * US_PER_MS))
    elif exchange == "okx":
        if message.get("arg", {}).get("channel") != "trades" or "data" not in message:
            return None
        for d in message["data"]:
            rows.append((d["instId"], d["tradeId"], d["px"], d["sz"], d["side"], int(d["ts"]) * US_PER_MS))
    else:
        raise ValueError(exchange)
    return [
        Trade(exchange, symbol, str(trade_id), Decimal(str(price)), Decimal(str(size)), side, time_us, (position, i))
        for i, (symbol, trade_id, price, size, side, time_us) in enumerate(rows)
    ]


def unique(trades: Iterable[Trade]) -> list[Trade]:
    """Each (exchange, symbol, trade_id) once, the first time it was seen."""
    seen: dict[tuple[str, str, str], Trade] = {}
    for trade in trades:
        seen.setdefault((trade.exchange, trade.symbol, trade.trade_id), trade)
    return list(seen.values())


def _order(trade: Trade) -> tuple[int, str, tuple[int, int]]:
    # By time, then (across venues) by exchange, then in the venue's own order.
    return trade.time_us, trade.exchange, trade.seq


def bars(trades: Iterable[Trade], minutes: int = 1) -> dict[tuple[str, str, int], Bar]:
    """(exchange, symbol, bar start in us) -> its bar."""
    width = minutes * 60_000_000
    groups: dict[tuple[str, str, int], list[Trade]] = defaultdict(list)
    for trade in trades:
        groups[(trade.exchange, trade.symbol, trade.time_us // width * width)].append(trade)
    out = {}
    for key, group in groups.items():
        ordered = sorted(group, key=_order)
        volume = sum((t.size for t in group), Decimal(0))
        quote = sum((t.price * t.size for t in group), Decimal(0))
        out[key] = Bar(
            open=ordered[0].price,
            high=max(t.price for t in group),
            low=min(t.price for t in group),
            close=ordered[-1].price,
            volume=volume,
            quote_volume=quote,
            vwap=float(quote / volume),
            trades=len(group),
            buy_volume=sum((t.size for t in group if t.side == "buy"), Decimal(0)),
            sell_volume=sum((t.size for t in group if t.side == "sell"), Decimal(0)),
            first_trade_id=ordered[0].trade_id,
            last_trade_id=ordered[-1].trade_id,
        )
    return out
