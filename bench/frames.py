"""Bursts as the Kafka records the ingestor writes: each venue's own WebSocket trade frame, keyed and with headers.

The frames follow the forms silver parses (``jobs/venues.py``): Binance's combined stream (one trade a frame), Kraken
WebSocket v2, Coinbase Advanced Trade ``market_trades``, Bybit v5 spot ``publicTrade`` and OKX v5 ``trades`` (one
frame a burst). They are written as text directly: the hot loop of a million-trade load.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

from bench.workload import SIZE_DECIMALS, Burst, Trade


@dataclass(frozen=True, slots=True)
class Record:
    """One Kafka record as the ingestor produces it (value, key ``exchange:SYMBOL``, ``exchange`` header)."""

    exchange: bytes
    key: bytes
    value: bytes
    trades: int


def _iso(time_us: int) -> str:
    seconds, micros = divmod(time_us, 1_000_000)
    return f"{time.strftime('%Y-%m-%dT%H:%M:%S', time.gmtime(seconds))}.{micros:06d}Z"


def _amounts(burst: Burst, trade: Trade) -> tuple[str, str]:
    return f"{trade.price:.{burst.price_decimals}f}", f"{trade.size:.{SIZE_DECIMALS}f}"


def _concatenated(symbol: str) -> str:
    return symbol.replace("-", "")


def binance(burst: Burst, time_us: int) -> list[str]:
    venue = _concatenated(burst.symbol)
    ms = time_us // 1000
    frames = []
    for t in burst.trades:
        price, size = _amounts(burst, t)
        maker = "false" if t.taker_buy else "true"  # m: the buyer was the maker, so the taker sold
        frames.append(
            f'{{"stream":"{venue.lower()}@trade","data":{{"e":"trade","E":{ms + 1},"s":"{venue}","t":{t.trade_id},'
            f'"p":"{price}","q":"{size}","T":{ms},"m":{maker},"M":true}}}}'
        )
    return frames


def kraken(burst: Burst, time_us: int) -> list[str]:
    pair = burst.symbol.replace("-", "/")
    stamp = _iso(time_us)
    trades = []
    for t in burst.trades:
        price, size = _amounts(burst, t)  # JSON numbers in v2
        side = "buy" if t.taker_buy else "sell"
        trades.append(
            f'{{"symbol":"{pair}","side":"{side}","price":{price},"qty":{size},"ord_type":"market",'
            f'"trade_id":{t.trade_id},"timestamp":"{stamp}"}}'
        )
    return [f'{{"channel":"trade","type":"update","data":[{",".join(trades)}]}}']


def coinbase(burst: Burst, time_us: int) -> list[str]:
    stamp = _iso(time_us)
    trades = []
    for t in burst.trades:
        price, size = _amounts(burst, t)
        maker_side = "SELL" if t.taker_buy else "BUY"  # Coinbase names the maker's side
        trades.append(
            f'{{"product_id":"{burst.symbol}","trade_id":"{t.trade_id}","price":"{price}","size":"{size}",'
            f'"time":"{stamp}","side":"{maker_side}"}}'
        )
    return [
        f'{{"channel":"market_trades","client_id":"","timestamp":"{stamp}","sequence_num":{burst.trades[0].trade_id},'
        f'"events":[{{"type":"update","trades":[{",".join(trades)}]}}]}}'
    ]


def bybit(burst: Burst, time_us: int) -> list[str]:
    venue = _concatenated(burst.symbol)
    ms = time_us // 1000
    trades = []
    for t in burst.trades:
        price, size = _amounts(burst, t)
        side = "Buy" if t.taker_buy else "Sell"
        trades.append(
            f'{{"i":"{t.trade_id}","T":{ms},"p":"{price}","v":"{size}","S":"{side}","seq":{t.trade_id},'
            f'"s":"{venue}","BT":false,"RPI":false}}'
        )
    return [f'{{"topic":"publicTrade.{venue}","ts":{ms},"type":"snapshot","data":[{",".join(trades)}]}}']


def okx(burst: Burst, time_us: int) -> list[str]:
    ms = time_us // 1000
    trades = []
    for t in burst.trades:
        price, size = _amounts(burst, t)
        side = "buy" if t.taker_buy else "sell"
        trades.append(
            f'{{"instId":"{burst.symbol}","tradeId":"{t.trade_id}","px":"{price}","sz":"{size}","side":"{side}",'
            f'"ts":"{ms}","count":"1"}}'
        )
    return [f'{{"arg":{{"channel":"trades","instId":"{burst.symbol}"}},"data":[{",".join(trades)}]}}']


RENDERERS: dict[str, Callable[[Burst, int], list[str]]] = {
    "binance": binance,
    "kraken": kraken,
    "coinbase": coinbase,
    "bybit": bybit,
    "okx": okx,
}


def records(burst: Burst, time_us: int) -> list[Record]:
    """The records of a burst whose trades happened at ``time_us`` (microseconds since the epoch)."""
    exchange = burst.venue.encode()
    key = f"{burst.venue}:{burst.symbol}".encode()
    frames = RENDERERS[burst.venue](burst, time_us)
    per_frame = len(burst.trades) // len(frames)
    return [Record(exchange, key, frame.encode(), per_frame) for frame in frames]
