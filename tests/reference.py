"""Plain-Python trades (by each venue's reference parser, core/venues/) and bars, written apart from the Spark jobs,
for the tests to compare them with."""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from decimal import Decimal

from core.venues import LAKE_VENUES
from core.venues.base import US_PER_MS
from cryptolake.venue import synthetic


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


def trades_of(exchange: str, raw: str, key_symbol: str, position: int = 0) -> list[Trade] | None:
    """The trades of one frame by its venue's reference parser, or None if it is no trade frame of ``exchange``;
    ``position``: the frame's in its stream."""
    rows = LAKE_VENUES[exchange].reference_trades(json.loads(raw), key_symbol)
    if rows is None:
        return None
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
