"""OKX v5 public trades."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import TYPE_CHECKING

from core.venues.base import (
    CONTROL,
    US_PER_MS,
    FrameKind,
    LakeVenue,
    Parsed,
    Timing,
    TradeText,
    chunks,
    compact,
    number,
    rejected,
    trades,
)

if TYPE_CHECKING:
    from pyspark.sql import Column

NOTICE_RECONNECT = "64008"  # "the connection will soon be closed for a service upgrade"


class Okx(LakeVenue):
    """OKX v5 public channel ``trades``; one connection carries every instrument (spot, swaps, futures).

    A trade frame::

        {"arg":{"channel":"trades","instId":"BTC-USDT"},"data":[{"instId":"BTC-USDT","tradeId":"338476307",
         "px":"30236","sz":"0.0002","side":"buy","ts":"1652459224818"}]}

    ``side`` is the taker's. Trade ids count up per instrument, so they order trades of one time, but are not
    promised to be contiguous, so no gaps are counted, and none is filled (its REST ``history-trades`` would page by
    id, but no hole is ever known). OKX closes
    connections silent for 30 s: the client sends ``ping`` (plain text, answered with ``pong``) when idle.
    It announces a cut with ``{"event":"notice","code":"64008",...}``.
    """

    name = feed = "okx"
    endpoint = "wss://ws.okx.com:8443"
    timing = Timing(silence=40.0, ping_every=20.0, ping_when_idle=True)
    max_symbols_per_connection = 500
    args_per_request = 100
    ping_text = "ping"
    pong_text = "pong"
    frame_schema = (
        "arg STRUCT<channel: STRING, instId: STRING>, data ARRAY<STRUCT<instId: STRING, tradeId: STRING, px: STRING, "
        "sz: STRING, side: STRING, ts: STRING>>"
    )

    def url(self, base_url: str) -> str:
        return f"{base_url.rstrip('/')}/ws/v5/public"

    def subscribe_messages(self) -> list[str]:
        args = [{"channel": "trades", "instId": self.venue_symbol(s)} for s in self.symbols]
        return [compact({"op": "subscribe", "args": chunk}) for chunk in chunks(args, self.args_per_request)]

    @staticmethod
    def venue_symbol(canonical: str) -> str:
        return canonical

    def parse(self, frame: str) -> Parsed:
        if frame == self.pong_text:
            return CONTROL
        message = json.loads(frame)
        arg = message.get("arg")
        if "data" in message and isinstance(arg, dict) and arg.get("channel") == "trades":
            symbol = self.canonical(arg["instId"])
            items = message["data"] if isinstance(message["data"], list) else []
            times = [t for t in (number(i.get("ts")) for i in items if isinstance(i, dict)) if t is not None]
            return trades([(symbol, None)] * max(1, len(items)), max(times, default=None))
        event = message.get("event")
        if event == "error":
            # Subscriptions are the only requests the ingestor makes.
            return rejected(f"{message.get('code')} {message.get('msg')}")
        if event == "notice" and message.get("code") == NOTICE_RECONNECT:
            return Parsed(FrameKind.RECONNECT, detail=f"{NOTICE_RECONNECT} {message.get('msg')}")
        return CONTROL

    @staticmethod
    def spark_trades(message: Column) -> Column:
        from pyspark.sql import functions as F

        from core.venues.spark import trade

        parsed = F.transform(
            message["data"],
            lambda t: trade(
                t["instId"], t["tradeId"], t["tradeId"].try_cast("long"), t["px"], t["sz"], F.lower(t["side"]),
                F.timestamp_millis(t["ts"].try_cast("long")),
            ),
        )  # fmt: skip
        return F.when((message["arg"]["channel"] == "trades") & message["data"].isNotNull(), parsed)

    @staticmethod
    def render(symbol: str, trades: Sequence[TradeText], time_us: int) -> list[str]:
        ms = time_us // US_PER_MS
        data = ",".join(
            f'{{"instId":"{symbol}","tradeId":"{t.trade_id}","px":"{t.price}","sz":"{t.size}",'
            f'"side":"{"buy" if t.taker_buy else "sell"}","ts":"{ms}","count":"1"}}'
            for t in trades
        )
        return [f'{{"arg":{{"channel":"trades","instId":"{symbol}"}},"data":[{data}]}}']
