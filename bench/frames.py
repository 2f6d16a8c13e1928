"""Bursts as the Kafka records the ingestor writes: each venue's own WebSocket trade frames, keyed and with headers.

Each venue's ``render`` (core/venues/) writes the frames: one trade a frame on Binance, one frame a burst elsewhere.
"""

from __future__ import annotations

from dataclasses import dataclass

from bench.workload import SIZE_DECIMALS, Burst
from core.venues import LAKE_VENUES, TradeText


@dataclass(frozen=True, slots=True)
class Record:
    """One Kafka record as the ingestor produces it (value, key ``exchange:SYMBOL``, ``exchange`` header)."""

    exchange: bytes
    key: bytes
    value: bytes
    trades: int


def render(burst: Burst, time_us: int) -> list[str]:
    """The venue's frames of a burst whose trades happened at ``time_us`` (microseconds since the epoch)."""
    texts = [
        TradeText(t.trade_id, f"{t.price:.{burst.price_decimals}f}", f"{t.size:.{SIZE_DECIMALS}f}", t.taker_buy)
        for t in burst.trades
    ]
    return LAKE_VENUES[burst.venue].render(burst.symbol, texts, time_us)


def records(burst: Burst, time_us: int) -> list[Record]:
    """The records of a burst whose trades happened at ``time_us`` (microseconds since the epoch)."""
    exchange = burst.venue.encode()
    key = f"{burst.venue}:{burst.symbol}".encode()
    frames = render(burst, time_us)
    per_frame = len(burst.trades) // len(frames)
    return [Record(exchange, key, frame.encode(), per_frame) for frame in frames]
