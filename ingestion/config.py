"""Which venues, symbols and URLs the ingestor connects to, from the settings."""

from __future__ import annotations

from dataclasses import dataclass

from core.settings import Settings, SettingsError, env_name
from core.venues import FEEDS, LAKE_VENUES, Binance, Exchange

# The setting that lists each venue's symbols; CRYPTOLAKE_SYMBOLS were Binance's before there were other venues.
SYMBOL_SETTINGS = {
    "binance": "symbols",
    "kraken": "kraken_symbols",
    "coinbase": "coinbase_symbols",
    "bybit": "bybit_symbols",
    "okx": "okx_symbols",
}


@dataclass(frozen=True)
class Connection:
    """One connection the ingestor keeps open: a venue's feed for a group of symbols."""

    exchange: Exchange
    url: str

    @property
    def label(self) -> str:
        symbols = ",".join(self.exchange.symbols[:3]) + ("..." if len(self.exchange.symbols) > 3 else "")
        return f"{self.exchange.feed}:{symbols}"


def feed_class(feed: str) -> type[Exchange]:
    try:
        return FEEDS[feed]
    except KeyError:
        known = ", ".join(FEEDS)
        raise SettingsError(f"{env_name('venues')}: unknown venue {feed!r}; known: {known}") from None


def base_url(settings: Settings, cls: type[Exchange]) -> str:
    """Local mode's venue when ``venue_url`` is set (each feed under its own path), else the venue's own."""
    if settings.venue_url:
        return f"{settings.venue_url.rstrip('/')}/{cls.feed}"
    return settings.binance_url if cls is Binance else cls.endpoint


def connections(settings: Settings) -> list[Connection]:
    """Every connection the settings ask for, as few per venue as its limits allow."""
    found = []
    for feed in settings.venues:
        cls = feed_class(feed)
        symbols = getattr(settings, SYMBOL_SETTINGS[cls.name])
        base = base_url(settings, cls)
        for group in cls.connection_groups(symbols):
            exchange = cls(group)
            found.append(Connection(exchange, exchange.url(base)))
    return found


def rest_urls(settings: Settings) -> dict[str, str]:
    """The REST base URL each configured venue fills its gaps from, by venue name; venues set off, and those whose
    REST API fills nothing, are left out. With ``venue_url``, the local venue's (http on its host and port)."""
    chosen = dict(item.split("=", 1) for item in settings.rest_urls)
    found = {}
    for feed in settings.venues:
        cls = LAKE_VENUES.get(feed_class(feed).name)
        if cls is None or cls is not FEEDS[feed] or cls.rest is None:
            continue  # an older protocol, or a venue without gaps to fill
        if settings.venue_url:
            local = "http" + settings.venue_url.removeprefix("ws")  # ws:// -> http://, wss:// -> https://
            default = f"{local.rstrip('/')}/{cls.feed}"
        else:
            default = cls.rest.endpoint
        url = chosen.get(cls.name, default)
        if url != "off":
            found[cls.name] = url
    return found
