"""Venues the ingestor can connect to, by the name the configuration gives their feed."""

from core.venues.base import Exchange, FrameKind, Parsed, Timing
from core.venues.binance import Binance
from core.venues.bybit import Bybit
from core.venues.coinbase import Coinbase
from core.venues.coinbase_exchange import CoinbaseExchange
from core.venues.kraken import Kraken
from core.venues.kraken_v1 import KrakenV1
from core.venues.okx import Okx

FEEDS: dict[str, type[Exchange]] = {
    cls.feed: cls for cls in (Binance, Kraken, Coinbase, Bybit, Okx, KrakenV1, CoinbaseExchange)
}

__all__ = [
    "FEEDS",
    "Binance",
    "Bybit",
    "Coinbase",
    "CoinbaseExchange",
    "Exchange",
    "FrameKind",
    "Kraken",
    "KrakenV1",
    "Okx",
    "Parsed",
    "Timing",
]
