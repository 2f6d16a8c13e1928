"""Binance spot trades over the combined-stream endpoint."""

from __future__ import annotations

import json
from collections.abc import Sequence
from decimal import Decimal
from typing import TYPE_CHECKING

from core.venues.base import (
    CONTROL,
    US_PER_MS,
    FrameKind,
    LakeVenue,
    Parsed,
    RestError,
    RestFill,
    RestQuery,
    RestTrade,
    Timing,
    TradeText,
    compact,
    error,
    number,
    split_concatenated,
    trade_id,
    trades,
)

if TYPE_CHECKING:
    from pyspark.sql import Column

HOUR = 3600.0


class Binance(LakeVenue):
    """Binance spot ``<symbol>@trade`` streams, subscribed through the combined-stream URL.

    A trade frame, as received::

        {"stream":"btcusdt@trade","data":{"e":"trade","E":1723161255343,"s":"BTCUSDT","t":3735683259,
         "p":"61837.63000000","q":"0.02000000","T":1723161255342,"m":true,"M":true}}

    ``t`` is the trade id (sequential per symbol, so it orders trades of one time), ``E`` the event time in ms, ``T``
    the trade time, ``m`` true when the buyer was the maker, so the taker sold. The server pings every 20 s and cuts
    connections that do not pong within a minute (websocket-client pongs with the ping's payload), and cuts every
    connection after 24 h; it announces other cuts with a ``serverShutdown`` event.

    Gaps are filled from ``GET /api/v3/historicalTrades?symbol=BTCUSDT&fromId=3735683259&limit=1000`` (public, no key
    since 2023; weight 25 of the 6,000 an IP may use a minute), which pages by id through the symbol's whole history::

        [{"id":3735683259,"price":"61837.63000000","qty":"0.02000000","quoteQty":"1236.75260000",
          "time":1723161255342,"isBuyerMaker":true,"isBestMatch":true}]

    An error is an object: ``{"code":-1121,"msg":"Invalid symbol."}``.
    """

    name = feed = "binance"
    endpoint = "wss://stream.binance.com:9443"
    timing = Timing(silence=60.0, max_age=23 * HOUR)
    max_symbols_per_connection = 1024  # streams per connection
    # Prices and sizes are read as strings, whether sent as JSON strings or numbers (Spark keeps a number's text), and
    # typed later without loss. "t" and "T" differ only in case, which Spark's field resolution does not tell apart:
    # the parser casts the struct, by position, to TRADE's readable names before using it.
    frame_schema = (
        "stream STRING, data STRUCT<e: STRING, s: STRING, t: BIGINT, p: STRING, q: STRING, T: BIGINT, m: BOOLEAN>"
    )
    TRADE = (
        "STRUCT<event_type: STRING, venue_symbol: STRING, trade_id: BIGINT, price: STRING, quantity: STRING, "
        "trade_time: BIGINT, buyer_is_maker: BOOLEAN>"
    )

    rest = RestFill(
        "https://api.binance.com", page=1000, per_second=2.0, by="id", reach="any trade of the symbol, by id"
    )
    REST_PATH = "/api/v3/historicalTrades"

    def url(self, base_url: str) -> str:
        streams = "/".join(f"{self.venue_symbol(s)}@trade" for s in self.symbols)
        return f"{base_url.rstrip('/')}/stream?streams={streams}"

    @staticmethod
    def venue_symbol(canonical: str) -> str:
        return canonical.replace("-", "").lower()

    @classmethod
    def canonical_of(cls, venue_symbol: str, trade_id: int | None) -> str:
        return split_concatenated(venue_symbol)

    def parse(self, frame: str) -> Parsed:
        message = json.loads(frame)
        if not isinstance(message, dict):
            return CONTROL
        stream = message.get("stream")
        data = message.get("data", message)
        if isinstance(data, dict) and data.get("e") == "serverShutdown":
            return Parsed(FrameKind.RECONNECT, detail="serverShutdown")
        if isinstance(stream, str) and stream.endswith("@trade"):
            symbol = self.canonical(stream.removesuffix("@trade"))
            fields = data if isinstance(data, dict) else {}
            return trades([(symbol, trade_id(fields.get("t")))], number(fields.get("E")))
        if "error" in message:
            return error(json.dumps(message["error"]))
        return CONTROL

    @staticmethod
    def spark_trades(message: Column) -> Column:
        from pyspark.sql import functions as F

        from core.venues.spark import trade

        # One trade a frame; its symbol is the unsplit BTCUSDT, so the Kafka key's canonical one stands in (null).
        data = message["data"].cast(Binance.TRADE)
        parsed = trade(
            F.lit(None).cast("string"),
            data["trade_id"],
            data["trade_id"],
            data["price"],
            data["quantity"],
            F.when(data["buyer_is_maker"], "sell").when(~data["buyer_is_maker"], "buy"),
            F.timestamp_millis(data["trade_time"]),
        )
        return F.when(data.isNotNull(), F.array(parsed))

    @staticmethod
    def render(symbol: str, trades: Sequence[TradeText], time_us: int) -> list[str]:
        # Written as text directly, one trade a frame: the benchmark's hot loop of a million-trade load.
        venue = symbol.replace("-", "")
        ms = time_us // US_PER_MS
        return [
            f'{{"stream":"{venue.lower()}@trade","data":{{"e":"trade","E":{ms + 1},"s":"{venue}","t":{t.trade_id},'
            f'"p":"{t.price}","q":"{t.size}","T":{ms},"m":{"false" if t.taker_buy else "true"},"M":true}}}}'
            for t in trades
        ]

    @classmethod
    def rest_symbol(cls, canonical: str) -> str:
        return cls.venue_symbol(canonical).upper()

    @classmethod
    def rest_request(cls, query: RestQuery) -> str:
        symbol = cls.rest_symbol(query.symbol)
        return f"{cls.REST_PATH}?symbol={symbol}&fromId={query.from_id}&limit={query.limit}"

    @classmethod
    def rest_query(cls, path: str, params: dict[str, str]) -> RestQuery | None:
        if path != cls.REST_PATH:
            return None
        from_id = int(params["fromId"]) if "fromId" in params else None
        return RestQuery(params["symbol"], int(params.get("limit", "500")), from_id=from_id)

    @classmethod
    def rest_trades(cls, body: str) -> list[RestTrade]:
        answer = json.loads(body)
        if isinstance(answer, dict):
            raise RestError(f"{answer.get('code')} {answer.get('msg')}")
        found = [
            RestTrade(int(t["id"]), t["price"], t["qty"], not t["isBuyerMaker"], int(t["time"]) * US_PER_MS)
            for t in answer
        ]
        return sorted(found, key=lambda t: t.trade_id)

    @classmethod
    def rest_answer(cls, symbol: str, trades: Sequence[RestTrade]) -> str:
        return compact(
            [
                {
                    "id": t.trade_id,
                    "price": t.price,
                    "qty": t.size,
                    "quoteQty": str(Decimal(t.price) * Decimal(t.size)),
                    "time": t.time_us // US_PER_MS,
                    "isBuyerMaker": not t.taker_buy,
                    "isBestMatch": True,
                }
                for t in trades
            ]
        )

    @classmethod
    def listed(cls, frame: str) -> list[tuple[str, RestTrade]]:
        message = json.loads(frame)
        if not (isinstance(message, dict) and str(message.get("stream", "")).endswith("@trade")):
            return []
        d = message["data"]
        return [(split_concatenated(d["s"]), RestTrade(int(d["t"]), d["p"], d["q"], not d["m"], d["T"] * US_PER_MS))]
