"""Venues the ingestor can connect to, by name."""

from ingestion.exchanges.base import Exchange, FrameKind
from ingestion.exchanges.binance import Binance

EXCHANGES: dict[str, type[Exchange]] = {cls.name: cls for cls in (Binance,)}

__all__ = ["EXCHANGES", "Binance", "Exchange", "FrameKind"]
