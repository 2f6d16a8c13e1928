"""The venue registry: every feed the ingestor can connect to, and the venues whose trades the lake keeps.

Adding a venue is one module beside these and its class in ``FEEDS``.
"""

from core.venues.base import (
    Exchange,
    FrameKind,
    LakeVenue,
    Parsed,
    RestError,
    RestFill,
    RestQuery,
    RestTrade,
    Timing,
    TradeText,
)
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
# By the name silver knows a frame's venue by (its Kafka `exchange` header): each venue's current protocol.
LAKE_VENUES: dict[str, type[LakeVenue]] = {cls.name: cls for cls in FEEDS.values() if issubclass(cls, LakeVenue)}

__all__ = [
    "FEEDS",
    "LAKE_VENUES",
    "Binance",
    "Bybit",
    "Coinbase",
    "CoinbaseExchange",
    "Exchange",
    "FrameKind",
    "Kraken",
    "KrakenV1",
    "LakeVenue",
    "Okx",
    "Parsed",
    "RestError",
    "RestFill",
    "RestQuery",
    "RestTrade",
    "Timing",
    "TradeText",
]
