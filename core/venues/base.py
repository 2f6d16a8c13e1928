"""A venue as one small class per venue (and per protocol version): what the ingestor needs to connect and read its
frames and, for the venues the lake keeps, how Spark reads its trades and how to write them."""

from __future__ import annotations

import json
import time
from abc import ABC, abstractmethod
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from enum import Enum
from typing import TYPE_CHECKING, Any, ClassVar, TypeVar

if TYPE_CHECKING:  # only the Spark jobs have pyspark: its parsers import it when called
    from pyspark.sql import Column

T = TypeVar("T")
US_PER_MS = 1_000

# Quote assets, longest first, to split a venue's concatenated spelling (BTCUSDT) into BASE-QUOTE.
QUOTES = tuple(
    sorted(
        ("USDT", "USDC", "FDUSD", "TUSD", "BUSD", "DAI", "USD", "EUR", "GBP", "TRY", "BRL", "JPY", "BTC", "ETH", "BNB"),
        key=len,
        reverse=True,
    )
)


# What a parser raises on a frame that is not what it claims to be: bad JSON, missing or mistyped fields, and JSON
# nested deeper than the parser recurses.
UNREADABLE = (ValueError, LookupError, TypeError, AttributeError, RecursionError)


class FrameKind(Enum):
    """What a received frame is; only trades go to Kafka, the rest only feeds metrics and logs."""

    TRADE = "trade"
    CONTROL = "control"  # acks, heartbeats, pongs, status
    ERROR = "error"  # the venue reports an error, or the frame cannot be read
    REJECTED = "rejected"  # the venue refused a subscription
    RECONNECT = "reconnect"  # the venue announces it will soon close this connection


@dataclass(frozen=True, slots=True)
class Parsed:
    """A frame as the ingestor sees it."""

    kind: FrameKind
    symbol: str | None = None  # trades: canonical symbol of the first trade, the frame's Kafka key
    # trades: (canonical symbol, trade id) per trade, the id None where ids are not sequential per symbol
    trades: Sequence[tuple[str, int | None]] = ()
    venue_ms: float | None = None  # trades: when the venue says it sent or made them, ms since the epoch
    detail: str | None = None  # errors, rejections, notices: what the venue said


CONTROL = Parsed(FrameKind.CONTROL)


def error(detail: str) -> Parsed:
    return Parsed(FrameKind.ERROR, detail=detail)


def rejected(detail: str) -> Parsed:
    return Parsed(FrameKind.REJECTED, detail=detail)


def trades(pairs: Sequence[tuple[str, int | None]], venue_ms: float | None) -> Parsed:
    """A trade frame; one without trades in it is a control frame."""
    if not pairs:
        return CONTROL
    return Parsed(FrameKind.TRADE, pairs[0][0], pairs, venue_ms)


def compact(message: Any) -> str:
    """JSON without spaces, as venues' own examples are written."""
    return json.dumps(message, separators=(",", ":"))


# Ids and times are read where a frame has them, for gaps and latency; a trade frame is forwarded without them,
# since bronze keeps frames as received and silver decides what a malformed trade is.


def trade_id(value: object) -> int | None:
    """A trade id sent as a number or a string of digits; None for anything else (e.g. a UUID, which has no order)."""
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    if isinstance(value, str) and value.isdigit():
        return int(value)
    return None


def number(value: object) -> float | None:
    """A number sent as such or as a numeric string (venues do both for times); None for anything else."""
    if isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)
    try:
        return float(value) if isinstance(value, str) else None
    except ValueError:
        return None


def rfc3339_ms(value: object) -> float | None:
    """Milliseconds since the epoch of an RFC 3339 time such as ``2023-09-25T07:49:37.708706Z``; None if none."""
    try:
        return datetime.fromisoformat(value).timestamp() * 1000 if isinstance(value, str) else None
    except ValueError:
        return None


def rfc3339_us(value: str) -> int:
    """Microseconds since the epoch of an RFC 3339 time, its fraction cut to microseconds (venues send up to ns)."""
    head, dot, fraction = value.removesuffix("Z").partition(".")
    seconds = int(datetime.fromisoformat(head + "+00:00").timestamp())
    return seconds * 1_000_000 + (int(fraction[:6].ljust(6, "0")) if dot else 0)


def iso_us(time_us: int) -> str:
    """RFC 3339 text of microseconds since the epoch, as venues write times: ``2026-08-09T21:05:48.167634Z``."""
    seconds, micros = divmod(time_us, 1_000_000)
    return f"{time.strftime('%Y-%m-%dT%H:%M:%S', time.gmtime(seconds))}.{micros:06d}Z"


def split_concatenated(symbol: str) -> str:
    """``BTCUSDT`` -> ``BTC-USDT`` by the known quote assets; unchanged when none matches."""
    upper = symbol.upper()
    for quote in QUOTES:
        if upper.endswith(quote) and len(upper) > len(quote):
            return f"{upper.removesuffix(quote)}-{quote}"
    return upper


def chunks(items: Sequence[T], size: int) -> list[list[T]]:
    """``items`` in lists of at most ``size``: how venues cap the symbols of a connection or a request."""
    return [list(items[i : i + size]) for i in range(0, len(items), size)]


@dataclass(frozen=True)
class Timing:
    """How a venue keeps a connection alive, in seconds."""

    silence: float  # reconnect when nothing at all arrives for this long
    ping_every: float | None = None  # send the venue's application ping this often
    ping_when_idle: bool = False  # ... counting from the last frame received rather than the last ping sent
    max_age: float | None = None  # hand over to a fresh connection before the venue cuts this one


class Exchange(ABC):
    """A venue's WebSocket trade feed for the symbols of one connection: where, what to send, how to read."""

    name: ClassVar[str]  # the venue: Kafka key prefix and `exchange` header
    feed: ClassVar[str]  # what the configuration calls this feed: the venue, or venue-version
    endpoint: ClassVar[str]  # public base URL
    timing: Timing  # the class's, unless an instance is given its own (tests)
    max_symbols_per_connection: ClassVar[int] = 200
    ping_text: ClassVar[str | None] = None  # the application ping, when the venue wants one
    pong_text: ClassVar[str | None] = None  # what the venue answers to it (for the local venue)

    def __init__(self, symbols: Sequence[str]) -> None:
        """``symbols`` in canonical ``BASE-QUOTE`` form, e.g. ``BTC-USDT``."""
        self.symbols = tuple(symbols)
        self._canonical = {self.venue_symbol(s): s for s in self.symbols}

    @abstractmethod
    def url(self, base_url: str) -> str:
        """The WebSocket URL to open for ``self.symbols`` under the venue's ``base_url``."""

    def subscribe_messages(self) -> list[str]:
        """Text frames to send once connected; none for venues that subscribe through the URL."""
        return []

    @staticmethod
    @abstractmethod
    def venue_symbol(canonical: str) -> str:
        """The venue's spelling of a canonical symbol."""

    @classmethod
    def canonical_of(cls, venue_symbol: str, trade_id: int | None) -> str:
        """Canonical form of a symbol in a recording, without configuration; ``trade_id`` as :meth:`parse` read it."""
        return venue_symbol.upper()

    @abstractmethod
    def parse(self, frame: str) -> Parsed:
        """What a text frame is; raises ValueError, KeyError, TypeError etc. on frames it cannot read."""

    def classify(self, frame: str) -> tuple[FrameKind, str | None]:
        """The frame's kind and, for trades, the canonical symbol it is keyed by; unreadable frames are errors."""
        try:
            parsed = self.parse(frame)
        except UNREADABLE:
            return FrameKind.ERROR, None
        return parsed.kind, parsed.symbol

    def canonical(self, venue_symbol: str) -> str:
        """Canonical form of a symbol the venue sent; unknown ones pass through upper-cased."""
        return self._canonical.get(venue_symbol) or venue_symbol.upper()

    def kafka_key(self, symbol: str) -> bytes:
        return f"{self.name}:{symbol}".encode()

    @classmethod
    def connection_groups(cls, symbols: Sequence[str]) -> list[tuple[str, ...]]:
        """The symbols split into as few connections as the venue's limits allow."""
        return [tuple(group) for group in chunks(symbols, cls.max_symbols_per_connection)]

    @classmethod
    def symbols_in(cls, frames: Iterable[str]) -> list[str]:
        """Canonical symbols of the trades in a recording's frames, in order of first appearance."""
        reader = cls(())
        found: dict[str, None] = {}
        for frame in frames:
            try:
                parsed = reader.parse(frame)
            except UNREADABLE:
                continue
            found.update((cls.canonical_of(symbol, trade_id), None) for symbol, trade_id in parsed.trades)
        return list(found)


@dataclass(frozen=True, slots=True)
class TradeText:
    """A trade to write into a venue's frame, its price and size already spelled with the venue's decimals."""

    trade_id: int
    price: str
    size: str
    taker_buy: bool


@dataclass(frozen=True, slots=True)
class RestTrade:
    """A trade as a venue's REST API lists it (and the local venue serves it): enough to write it as a WS frame."""

    trade_id: int
    price: str  # as the venue spells it
    size: str
    taker_buy: bool
    time_us: int


@dataclass(frozen=True, slots=True)
class RestQuery:
    """A REST request for a symbol's trades: from an id, after a time (exclusive), or else the latest ones."""

    symbol: str  # canonical in the filler's requests; as the REST API spells it in the local venue's reading of one
    limit: int
    from_id: int | None = None
    after_us: int | None = None


@dataclass(frozen=True)
class RestFill:
    """What a venue's public REST API offers to fill a gap in its trade ids (no key needed on any of them)."""

    endpoint: str  # public base URL
    page: int  # trades per request at most
    per_second: float  # requests a second the filler makes at most, under the venue's documented limit
    by: str  # "id": pages from a trade id; "time": pages after a time; "recent": only the latest ``page`` trades
    reach: str  # how far back it fills, for the README and the log


class LakeVenue(Exchange):
    """A venue's current protocol, whose trades the lake keeps: the ingestor's side, and every reading of its trades.

    ``frame_schema`` and :meth:`spark_trades` are silver's parser (the tests check it against their own reading of
    the venue's documentation, tests/reference.py); :meth:`render` writes frames for the local venue, the benchmark
    and the tests.
    """

    frame_schema: ClassVar[str]  # Spark DDL of the JSON of its trade frames, for from_json

    @staticmethod
    @abstractmethod
    def spark_trades(message: Column) -> Column:
        """The array of trades (core/venues/spark.py) of a frame read with ``frame_schema``: null for anything but a
        trade frame of this venue (unparseable text, an ack, a heartbeat), empty for a trade frame without trades.

        Each trade's ``number`` is where the venue says how it orders its trades of one instant: by trade id where it
        numbers them in order per symbol, else (null) by the order of frames and of trades in a frame."""

    @staticmethod
    @abstractmethod
    def render(symbol: str, trades: Sequence[TradeText], time_us: int) -> list[str]:
        """The frames the venue sends for trades of canonical ``symbol`` made at ``time_us`` (us since the epoch)."""

    # Gap fill from the venue's REST API; None where its WS trades carry no ids counted one by one (no gap is seen).
    rest: ClassVar[RestFill | None] = None

    @classmethod
    def rest_symbol(cls, canonical: str) -> str:
        """The REST API's spelling of a canonical symbol."""
        return cls.venue_symbol(canonical)

    @classmethod
    def rest_request(cls, query: RestQuery) -> str:
        """The path and query string of the REST request for ``query``, under ``rest.endpoint``."""
        raise NotImplementedError(f"{cls.name} fills no gaps")

    @classmethod
    def rest_query(cls, path: str, params: dict[str, str]) -> RestQuery | None:
        """What a REST request asks for, its symbol as REST spells it (the local venue's side of :meth:`rest_request`);
        None if it is not this venue's trade endpoint."""
        raise NotImplementedError(f"{cls.name} fills no gaps")

    @classmethod
    def rest_trades(cls, body: str) -> list[RestTrade]:
        """The trades of a REST answer, in id order; raises ValueError, KeyError etc. on an answer it cannot read,
        and :class:`RestError` where the venue answers with an error."""
        raise NotImplementedError(f"{cls.name} fills no gaps")

    @classmethod
    def rest_answer(cls, symbol: str, trades: Sequence[RestTrade]) -> str:
        """The venue's REST answer listing ``trades`` (in id order) of canonical ``symbol``, for the local venue."""
        raise NotImplementedError(f"{cls.name} fills no gaps")

    @classmethod
    def listed(cls, frame: str) -> list[tuple[str, RestTrade]]:
        """(canonical symbol, trade) of each trade in a WS frame of this venue: what the local venue lists over REST.
        Raises on frames it cannot read, like :meth:`Exchange.parse`; [] for what is no trade frame."""
        raise NotImplementedError(f"{cls.name} fills no gaps")

    @classmethod
    def filled_frames(cls, symbol: str, trades: Sequence[RestTrade]) -> list[str]:
        """Trades fetched over REST as the venue's own WS trade frames (so silver reads them unchanged): one
        :meth:`render` a run of trades of one time."""
        frames: list[str] = []
        start = 0
        for end in range(1, len(trades) + 1):
            if end == len(trades) or trades[end].time_us != trades[start].time_us:
                texts = [TradeText(t.trade_id, t.price, t.size, t.taker_buy) for t in trades[start:end]]
                frames += cls.render(symbol, texts, trades[start].time_us)
                start = end
        return frames


class RestError(ValueError):
    """The venue answered a REST request with an error of its own."""
