"""Bybit v5 public trades: spot, and linear perpetuals for symbols ending in -SWAP."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import TYPE_CHECKING

from core.venues.base import (
    CONTROL,
    US_PER_MS,
    LakeVenue,
    Parsed,
    RestError,
    RestFill,
    RestQuery,
    RestTrade,
    Timing,
    TradeText,
    chunks,
    compact,
    number,
    rejected,
    split_concatenated,
    trade_id,
    trades,
)

if TYPE_CHECKING:
    from pyspark.sql import Column

SWAP = "-SWAP"  # OKX's suffix for perpetual swaps, used as the canonical mark of one everywhere


class Bybit(LakeVenue):
    """Bybit v5 ``publicTrade.<symbol>`` topics; a spot connection for spot symbols, a linear one for ``-SWAP``.

    A spot trade frame (linear ones also carry ``L``, the tick direction)::

        {"topic":"publicTrade.ETHUSDT","ts":1786310821917,"type":"snapshot","data":[{"i":"2280000001739247417",
         "T":1786310821917,"p":"1923.28","v":"0.04537","S":"Sell","seq":178477362706,"s":"ETHUSDT","BT":false,
         "RPI":false}]}

    ``S`` is the taker's side. Spot trade ids are numbers counting up per symbol, which order trades of one time;
    linear ones are UUIDs, and a frame's order (oldest first, as Bybit lists them) orders those. Bybit wants
    ``{"op":"ping"}`` every 20 s and takes at most 10 topics per spot subscribe request.

    Spot gaps are filled from ``GET /v5/market/recent-trade?category=spot&symbol=ETHUSDT&limit=60`` (no key; 600
    requests per 5 s per IP): only the latest 60 spot trades, newest first, so only a gap among them can be filled::

        {"retCode":0,"retMsg":"OK","result":{"category":"spot","list":[{"execId":"2280000001739247417",
         "symbol":"ETHUSDT","price":"1923.28","size":"0.04537","side":"Sell","time":"1786310821917",
         "isBlockTrade":false}]},"retExtInfo":{},"time":1786310822000}

    An error is a non-zero ``retCode`` with its ``retMsg``.
    """

    name = feed = "bybit"
    endpoint = "wss://stream.bybit.com"
    timing = Timing(silence=45.0, ping_every=20.0)
    max_symbols_per_connection = 500
    topics_per_request = 10
    ping_text = '{"op":"ping"}'
    pong_text = '{"success":true,"ret_msg":"pong","conn_id":"local","op":"ping"}'
    # "s" and "S" differ only in case, which Spark's field resolution does not tell apart: the parser casts the
    # trades, by position, to TRADE's readable names before using them.
    frame_schema = "topic STRING, data ARRAY<STRUCT<i: STRING, T: BIGINT, p: STRING, v: STRING, S: STRING, s: STRING>>"
    TRADE = (
        "ARRAY<STRUCT<trade_id: STRING, trade_time: BIGINT, price: STRING, volume: STRING, taker_side: STRING, "
        "venue_symbol: STRING>>"
    )

    rest = RestFill("https://api.bybit.com", page=60, per_second=5.0, by="recent", reach="the latest 60 spot trades")
    REST_PATH = "/v5/market/recent-trade"

    def __init__(self, symbols: Sequence[str]) -> None:
        super().__init__(symbols)
        linear = {s.endswith(SWAP) for s in self.symbols}
        if len(linear) > 1:
            raise ValueError(f"Bybit spot and -SWAP symbols need separate connections: {self.symbols}")
        self.category = "linear" if linear == {True} else "spot"

    def url(self, base_url: str) -> str:
        return f"{base_url.rstrip('/')}/v5/public/{self.category}"

    def subscribe_messages(self) -> list[str]:
        topics = [f"publicTrade.{self.venue_symbol(s)}" for s in self.symbols]
        return [compact({"op": "subscribe", "args": chunk}) for chunk in chunks(topics, self.topics_per_request)]

    @staticmethod
    def venue_symbol(canonical: str) -> str:
        return canonical.removesuffix(SWAP).replace("-", "")

    @classmethod
    def canonical_of(cls, venue_symbol: str, trade_id: int | None) -> str:
        # Recordings tell the market by the trade ids: numbers on spot, UUIDs (read as None) on linear.
        return split_concatenated(venue_symbol) + ("" if trade_id is not None else SWAP)

    @classmethod
    def connection_groups(cls, symbols: Sequence[str]) -> list[tuple[str, ...]]:
        spot = [s for s in symbols if not s.endswith(SWAP)]
        linear = [s for s in symbols if s.endswith(SWAP)]
        return [*super().connection_groups(spot), *super().connection_groups(linear)]

    def parse(self, frame: str) -> Parsed:
        message = json.loads(frame)
        topic = message.get("topic")
        if isinstance(topic, str) and topic.startswith("publicTrade."):
            symbol = self.canonical(topic.removeprefix("publicTrade."))
            items = message.get("data") or [{}]
            spot = self.category == "spot"
            ids = [trade_id(item.get("i")) if spot and isinstance(item, dict) else None for item in items]
            return trades([(symbol, i) for i in ids], number(message.get("ts")))
        if message.get("success") is False:
            return rejected(f"{message.get('ret_msg')} ({message.get('op')})")
        return CONTROL

    @staticmethod
    def spark_trades(message: Column) -> Column:
        from pyspark.sql import functions as F

        from core.venues.spark import trade

        # The symbol is the unsplit BTCUSDT, so the Kafka key's canonical one stands in (null).
        parsed = F.transform(
            message["data"].cast(Bybit.TRADE),
            lambda t: trade(
                F.lit(None).cast("string"),
                t["trade_id"],
                # Spot ids order trades; linear UUIDs give null, and the frame's order (oldest first) stands.
                t["trade_id"].try_cast("long"),
                t["price"],
                t["volume"],
                F.lower(t["taker_side"]),
                F.timestamp_millis(t["trade_time"]),
            ),
        )
        return F.when(message["topic"].startswith("publicTrade."), parsed)

    @staticmethod
    def render(symbol: str, trades: Sequence[TradeText], time_us: int) -> list[str]:
        venue = symbol.replace("-", "")
        ms = time_us // US_PER_MS
        data = ",".join(
            f'{{"i":"{t.trade_id}","T":{ms},"p":"{t.price}","v":"{t.size}","S":"{"Buy" if t.taker_buy else "Sell"}",'
            f'"seq":{t.trade_id},"s":"{venue}","BT":false,"RPI":false}}'
            for t in trades
        )
        return [f'{{"topic":"publicTrade.{venue}","ts":{ms},"type":"snapshot","data":[{data}]}}']

    @classmethod
    def rest_request(cls, query: RestQuery) -> str:
        return f"{cls.REST_PATH}?category=spot&symbol={cls.rest_symbol(query.symbol)}&limit={query.limit}"

    @classmethod
    def rest_query(cls, path: str, params: dict[str, str]) -> RestQuery | None:
        if path != cls.REST_PATH or params.get("category") != "spot":
            return None
        return RestQuery(params["symbol"], int(params.get("limit", "60")))

    @classmethod
    def rest_trades(cls, body: str) -> list[RestTrade]:
        answer = json.loads(body)
        if answer.get("retCode") != 0:
            raise RestError(f"{answer.get('retCode')} {answer.get('retMsg')}")
        found = [
            RestTrade(int(t["execId"]), t["price"], t["size"], t["side"] == "Buy", int(t["time"]) * US_PER_MS)
            for t in answer["result"]["list"]
        ]
        return sorted(found, key=lambda t: t.trade_id)

    @classmethod
    def rest_answer(cls, symbol: str, trades: Sequence[RestTrade]) -> str:
        listed = [
            {
                "execId": str(t.trade_id),
                "symbol": cls.venue_symbol(symbol),
                "price": t.price,
                "size": t.size,
                "side": "Buy" if t.taker_buy else "Sell",
                "time": str(t.time_us // US_PER_MS),
                "isBlockTrade": False,
            }
            for t in reversed(trades)
        ]
        result = {"category": "spot", "list": listed}
        return compact({"retCode": 0, "retMsg": "OK", "result": result, "retExtInfo": {}, "time": 0})

    @classmethod
    def listed(cls, frame: str) -> list[tuple[str, RestTrade]]:
        message = json.loads(frame)
        topic = message.get("topic")
        if not (isinstance(topic, str) and topic.startswith("publicTrade.")):
            return []
        return [
            (split_concatenated(t["s"]), RestTrade(int(t["i"]), t["p"], t["v"], t["S"] == "Buy", t["T"] * US_PER_MS))
            for t in message["data"]
            if trade_id(t["i"]) is not None  # spot only: linear ids are UUIDs, and no gap is seen there
        ]
