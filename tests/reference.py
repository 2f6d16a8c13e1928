"""The tests' oracle: trades read from each venue's frames and bars computed from them in plain Python.

Written from the venues' public documentation (Binance spot ``@trade``, Coinbase Advanced Trade ``market_trades``,
Kraken WebSocket v2 ``trade``, OKX v5 ``trades``, Bybit v5 ``publicTrade``), apart from what it checks: it imports
neither the venues' modules (core/venues/) nor the jobs, and reads every frame's JSON and orders ties itself.
"""

from __future__ import annotations

import calendar
import json
import re
from collections import defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from decimal import Decimal
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from cryptolake.venue import synthetic

US_PER_MS = 1_000
RFC3339 = re.compile(r"(\d{4})-(\d\d)-(\d\d)T(\d\d):(\d\d):(\d\d)(?:\.(\d+))?(?:Z|[+-]00:00)")
SWAP = "-SWAP"  # how the lake names a perpetual: Bybit's linear market


@dataclass(frozen=True)
class Trade:
    exchange: str
    symbol: str
    trade_id: str
    price: Decimal
    size: Decimal
    side: str  # the taker's: buy or sell
    time_us: int
    # Where the venue puts the trade among its trades of one instant: the venue's name, then the trade's number where
    # the venue numbers its trades in order per symbol, else the frame's place in the stream and the trade's place in
    # the frame as the venue lists them (oldest first). It orders trades; it is not part of what a trade is.
    order: tuple[Any, ...] = field(default=(), compare=False, repr=False)


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


def _us(text: str) -> int:
    """Microseconds since the epoch of an RFC 3339 UTC time; digits beyond the microsecond are dropped."""
    found = RFC3339.fullmatch(text)
    if found is None:
        raise ValueError(f"not an RFC 3339 UTC time: {text}")
    *calendar_fields, fraction = found.groups()
    seconds = calendar.timegm(tuple(int(f) for f in calendar_fields))
    return seconds * 1_000_000 + int((fraction or "").ljust(6, "0")[:6])


def _decimal(value: object) -> Decimal:
    """A price or size as sent: a numeric string, or a JSON number (read as Decimal, so as written)."""
    return value if isinstance(value, Decimal) else Decimal(str(value))


# Each venue's reading of one frame, from its documentation: None if the frame is no trade frame, else per trade its
# symbol, id, price, size, taker's side, time in us, and its number if the venue numbers its trades in order per
# symbol (None: the frame lists them oldest first, and that order stands).
Row = tuple[str, str, Decimal, Decimal, str, int, int | None]


def _binance(message: dict[str, Any], key_symbol: str) -> list[Row] | None:
    # Combined stream: {"stream":"btcusdt@trade","data":{"e":"trade","s":"BTCUSDT","t":<id counting up per symbol>,
    # "p":..,"q":..,"T":<trade time ms>,"m":<buyer is maker>}}. The frame names the symbol unsplit: the key's stands.
    if not str(message.get("stream", "")).endswith("@trade"):
        return None
    d = message["data"]
    return [(key_symbol, str(d["t"]), _decimal(d["p"]), _decimal(d["q"]), "sell" if d["m"] else "buy",
             d["T"] * US_PER_MS, int(d["t"]))]  # fmt: skip


def _coinbase(message: dict[str, Any], key_symbol: str) -> list[Row] | None:
    # {"channel":"market_trades","events":[{"type":"snapshot"|"update","trades":[{"trade_id","product_id","price",
    # "size","side":<the maker's>,"time"}]}]}; trade ids count up per product, frames list trades newest first.
    if message.get("channel") != "market_trades":
        return None
    taker = {"BUY": "sell", "SELL": "buy"}
    return [(d["product_id"], d["trade_id"], _decimal(d["price"]), _decimal(d["size"]), taker[d["side"]],
             _us(d["time"]), int(d["trade_id"]))
            for event in message["events"] for d in event["trades"]]  # fmt: skip


def _kraken(message: dict[str, Any], key_symbol: str) -> list[Row] | None:
    # {"channel":"trade","type":"snapshot"|"update","data":[{"symbol":"BTC/USD","side":<the taker's>,"price":<number>,
    # "qty":<number>,"ord_type","trade_id":<integer counting up per pair>,"timestamp":<RFC 3339>}]}
    if message.get("channel") != "trade" or message.get("type") not in ("snapshot", "update"):
        return None
    return [(d["symbol"].replace("/", "-"), str(d["trade_id"]), _decimal(d["price"]), _decimal(d["qty"]), d["side"],
             _us(d["timestamp"]), int(d["trade_id"]))
            for d in message["data"]]  # fmt: skip


def _okx(message: dict[str, Any], key_symbol: str) -> list[Row] | None:
    # {"arg":{"channel":"trades","instId"},"data":[{"instId","tradeId":<counting up per instrument>,"px","sz",
    # "side":<the taker's>,"ts":<ms, as a string>}]}; acks carry an "event" and no data.
    if message.get("arg", {}).get("channel") != "trades" or "data" not in message:
        return None
    return [(d["instId"], d["tradeId"], _decimal(d["px"]), _decimal(d["sz"]), d["side"], int(d["ts"]) * US_PER_MS,
             int(d["tradeId"]))
            for d in message["data"]]  # fmt: skip


def _bybit(message: dict[str, Any], key_symbol: str) -> list[Row] | None:
    # {"topic":"publicTrade.BTCUSDT","data":[{"T":<ms>,"s","S":"Buy"|"Sell" (the taker's),"v","p","i"}]}, trades
    # oldest first. Spot ids count up per symbol; linear ones are UUIDs, ordered only by the frames.
    if not str(message.get("topic", "")).startswith("publicTrade."):
        return None
    linear = key_symbol.endswith(SWAP)
    return [(key_symbol, d["i"], _decimal(d["p"]), _decimal(d["v"]), d["S"].lower(), d["T"] * US_PER_MS,
             None if linear else int(d["i"]))
            for d in message["data"]]  # fmt: skip


READERS: dict[str, Callable[[dict[str, Any], str], list[Row] | None]] = {
    "binance": _binance,
    "coinbase": _coinbase,
    "kraken": _kraken,
    "okx": _okx,
    "bybit": _bybit,
}


def trades_of(exchange: str, raw: str, key_symbol: str, position: int = 0) -> list[Trade] | None:
    """The trades of one frame, or None if it is no trade frame of ``exchange``; ``key_symbol``: its Kafka key's,
    ``position``: the frame's place in its stream (its Kafka offset)."""
    message = json.loads(raw, parse_float=Decimal)
    rows = READERS[exchange](message, key_symbol) if isinstance(message, dict) else None
    if rows is None:
        return None
    return [
        Trade(exchange, symbol, trade_id, price, size, side, time_us,
              (exchange, number) if number is not None else (exchange, position, index))
        for index, (symbol, trade_id, price, size, side, time_us, number) in enumerate(rows)
    ]  # fmt: skip


def from_synthetic(trade: synthetic.Trade, exchange: str = "binance") -> Trade:
    """A synthetic venue's trade, as the reference sees a Binance trade."""
    side = "sell" if trade.buyer_is_maker else "buy"
    return Trade(exchange, trade.symbol, str(trade.trade_id), trade.price, trade.size, side,
                 trade.time_ms * US_PER_MS, (exchange, trade.trade_id))  # fmt: skip


def unique(trades: Iterable[Trade]) -> list[Trade]:
    """Each (exchange, symbol, trade_id) once, the first time it was seen."""
    seen: dict[tuple[str, str, str], Trade] = {}
    for trade in trades:
        seen.setdefault((trade.exchange, trade.symbol, trade.trade_id), trade)
    return list(seen.values())


def _order(trade: Trade) -> tuple[int, str, tuple[Any, ...]]:
    # By time, then (across venues, pooled under one exchange name) by venue, then in the venue's own order.
    return trade.time_us, trade.exchange, trade.order


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
