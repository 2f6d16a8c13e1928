"""Venues the ingestor can connect to, by the name the configuration gives their feed."""

from ingestion.exchanges.base import Exchange, FrameKind, Parsed, Timing
from ingestion.exchanges.binance import Binance
from ingestion.exchanges.bybit import Bybit
from ingestion.exchanges.coinbase import Coinbase
from ingestion.exchanges.coinbase_exchange import CoinbaseExchange
from ingestion.exchanges.kraken import Kraken
from ingestion.exchanges.kraken_v1 import KrakenV1
from ingestion.exchanges.okx import Okx

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
