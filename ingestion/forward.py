"""The ingestor's sink: trade frames to Kafka unchanged, counted per symbol, timed, and checked for gaps."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from prometheus_client import Counter

from core.venues import Exchange, FrameKind, Parsed
from ingestion.gaps import GapTracker
from ingestion.metrics import Metrics


class FrameSender(Protocol):
    def send(self, exchange: bytes, key: bytes, frame: bytes, received_at_us: int, *, filled: bool = False) -> None:
        """``filled``: a frame made of trades fetched over REST to fill a gap, not one received."""


@dataclass(frozen=True)
class _SymbolSeries:
    key: bytes
    frames: Counter
    bytes: Counter
    trades: Counter


def _trade_id(pair: tuple[str, int | None]) -> int:
    return pair[1] or 0


class Forwarder:
    """Sends each trade frame to Kafka keyed by its first trade's symbol; everything else only feeds metrics."""

    def __init__(self, exchange: Exchange, producer: FrameSender, metrics: Metrics, gaps: GapTracker) -> None:
        self.exchange = exchange
        self._producer = producer
        self._metrics = metrics
        self._gaps = gaps
        self._header = exchange.name.encode()
        self._latency = metrics.histogram("latency_seconds", exchange=exchange.name)
        self._symbols: dict[str, _SymbolSeries] = {}

    def sent(self, text: str) -> None:
        """Subscriptions are the session's business."""

    def received(self, frame: bytes, parsed: Parsed, received_at_us: int) -> None:
        if parsed.kind is not FrameKind.TRADE or parsed.symbol is None:
            return
        series = self._symbols.get(parsed.symbol) or self._add(parsed.symbol)
        self._producer.send(self._header, series.key, frame, received_at_us)
        series.frames.inc()
        series.bytes.inc(len(frame))
        pairs = parsed.trades
        if len(pairs) > 1 and pairs[0][1] is not None:
            pairs = sorted(pairs, key=_trade_id)  # in id order, so a frame listing newest first opens no holes
        # Where a hole opens, about when the trade before it was made: a fill by time starts there.
        at_us = int(parsed.venue_ms * 1000) if parsed.venue_ms is not None else received_at_us
        for symbol, trade_id in pairs:
            (series if symbol == parsed.symbol else self._symbols.get(symbol) or self._add(symbol)).trades.inc()
            if trade_id is not None:
                self._gaps.observe(symbol, trade_id, at_us)
        if parsed.venue_ms is not None:
            self._latency.observe(received_at_us / 1e6 - parsed.venue_ms / 1e3)

    def tick(self) -> None:
        self._gaps.sweep()

    def _add(self, symbol: str) -> _SymbolSeries:
        labels = {"exchange": self.exchange.name, "symbol": symbol}
        series = _SymbolSeries(
            key=self.exchange.kafka_key(symbol),
            frames=self._metrics.counter("frames_total", **labels),
            bytes=self._metrics.counter("bytes_total", **labels),
            trades=self._metrics.counter("trades_total", **labels),
        )
        self._symbols[symbol] = series
        return series
