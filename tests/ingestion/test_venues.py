"""Each venue's class against its recorded real sessions and documented frames: what is a trade, keyed how."""

from __future__ import annotations

import json
from collections import Counter

import pytest

from core.venues import (
    FEEDS,
    Binance,
    Bybit,
    Coinbase,
    CoinbaseExchange,
    Exchange,
    FrameKind,
    Kraken,
    KrakenV1,
    Okx,
)
from tests.fixtures import received_frames
from tests.ingestion.frames import kraken_ack, kraken_rejection, kraken_session, kraken_trades

TRADE, CONTROL, ERROR = FrameKind.TRADE, FrameKind.CONTROL, FrameKind.ERROR
REJECTED, RECONNECT = FrameKind.REJECTED, FrameKind.RECONNECT


def kinds(exchange: Exchange, relative: str) -> Counter[tuple[FrameKind, str | None]]:
    return Counter(exchange.classify(frame) for frame in received_frames(relative))


@pytest.mark.parametrize(
    ("exchange", "relative", "expected"),
    [
        (
            Binance(["BTC-USDT"]),
            "binance/spot_btcusdt_trade_combined_20240808.replay.jsonl",
            {(TRADE, "BTC-USDT"): 9757},
        ),
        (
            Bybit(["BTC-USDT", "ETH-USDT"]),
            "bybit/v5_spot_publicTrade_session.replay.jsonl",
            {(CONTROL, None): 7, (TRADE, "BTC-USDT"): 11, (TRADE, "ETH-USDT"): 7},
        ),
        (
            Bybit(["BTC-USDT-SWAP", "ETH-USDT-SWAP", "SOL-USDT-SWAP", "DOGE-USDT-SWAP"]),
            "bybit/v5_linear_publicTrade_session.replay.jsonl",
            {
                (CONTROL, None): 17,
                (TRADE, "BTC-USDT-SWAP"): 16,
                (TRADE, "ETH-USDT-SWAP"): 12,
                (TRADE, "SOL-USDT-SWAP"): 57,
                (TRADE, "DOGE-USDT-SWAP"): 17,
            },
        ),
        (
            Coinbase(["BTC-USD", "ETH-USD"]),
            "coinbase/advanced_trade_market_trades.replay.jsonl",
            {(CONTROL, None): 30, (TRADE, "BTC-USD"): 40, (TRADE, "ETH-USD"): 19},
        ),
        (
            KrakenV1(["XMR-USD", "SC-EUR"]),
            "kraken/v1_trade_session_20210417.replay.jsonl",
            {(CONTROL, None): 41, (TRADE, "XMR-USD"): 3, (TRADE, "SC-EUR"): 5},
        ),
        (
            Okx(["BTC-USDT", "UNI-USD-SWAP", "BTC-USD-220527"]),
            "okx/v5_trades_session_20220513.replay.jsonl",
            {(CONTROL, None): 6, (TRADE, "BTC-USDT"): 69, (TRADE, "UNI-USD-SWAP"): 1, (TRADE, "BTC-USD-220527"): 4},
        ),
    ],
    ids=["binance", "bybit spot", "bybit linear", "coinbase", "kraken v1", "okx"],
)
def test_recorded_sessions_split_into_trades_by_symbol_and_the_rest(
    exchange: Exchange, relative: str, expected: dict[tuple[FrameKind, str | None], int]
) -> None:
    assert kinds(exchange, relative) == expected


def test_coinbase_exchange_feed_matches_and_last_matches_are_trades() -> None:
    exchange = CoinbaseExchange(["SKL-USD", "DASH-BTC"])
    found = kinds(exchange, "coinbase/legacy_exchange_matches_20210417.replay.jsonl")
    assert found[(CONTROL, None)] == 3
    assert found[(TRADE, "SKL-USD")] == 53
    assert found[(TRADE, "DASH-BTC")] == 16
    assert sum(n for (kind, _), n in found.items() if kind is TRADE) == 107


def test_trade_ids_are_read_where_they_count_up_per_symbol() -> None:
    first = next(received_frames("binance/spot_btcusdt_trade_combined_20240808.replay.jsonl"))
    binance = Binance(["BTC-USDT"]).parse(first)
    assert binance.trades == [("BTC-USDT", 3735683259)]
    assert binance.venue_ms == 1723161255343

    spot = [Bybit(["ETH-USDT"]).parse(f) for f in received_frames("bybit/v5_spot_publicTrade_session.replay.jsonl")]
    assert ("ETH-USDT", 2280000001739247417) in [t for p in spot for t in p.trades]
    # Linear ids are UUIDs: no order, so no id to track.
    frames = received_frames("bybit/v5_linear_publicTrade_session.replay.jsonl")
    linear = Bybit(["BTC-USDT-SWAP"]).parse(next(f for f in frames if "publicTrade.BTCUSDT" in f))
    assert linear.trades == [("BTC-USDT-SWAP", None)]

    snapshot = Coinbase(["BTC-USD"]).parse(next(received_frames("coinbase/advanced_trade_market_trades.replay.jsonl")))
    assert len(snapshot.trades) == 100
    assert snapshot.trades[0] == ("BTC-USD", 1068572090)  # newest first
    assert snapshot.venue_ms == pytest.approx(1786309548228.5688)

    okx = Okx(["BTC-USDT"]).parse(okx_first_trade())
    assert okx.trades == [("BTC-USD-220527", None)]  # not subscribed: the venue's spelling passes through


def okx_first_trade() -> str:
    return next(f for f in received_frames("okx/v5_trades_session_20220513.replay.jsonl") if '"data"' in f)


def test_kraken_v1_connection_id_beyond_int64_is_read_as_a_control_frame() -> None:
    status = next(received_frames("kraken/v1_trade_session_20210417.replay.jsonl"))
    assert json.loads(status)["connectionID"] > 2**63
    assert KrakenV1(["XMR-USD"]).classify(status) == (CONTROL, None)


def test_kraken_v2_frames_as_documented() -> None:
    exchange = Kraken(["BTC-USD", "ETH-USD"])
    update = exchange.parse(kraken_trades("BTC/USD", [74315837, 74315838]))
    assert (update.kind, update.symbol) == (TRADE, "BTC-USD")
    assert update.trades == [("BTC-USD", 74315837), ("BTC-USD", 74315838)]
    session = Counter(exchange.classify(f) for f in kraken_session({"BTC/USD": 1, "ETH/USD": 100}))
    assert session == {(CONTROL, None): 13, (TRADE, "BTC-USD"): 11, (TRADE, "ETH-USD"): 11}
    assert exchange.classify(kraken_ack("BTC/USD")) == (CONTROL, None)
    assert exchange.classify('{"channel":"heartbeat"}') == (CONTROL, None)
    assert exchange.classify(Kraken.pong_text or "") == (CONTROL, None)
    rejection = exchange.parse(kraken_rejection("BTC/XYZ"))
    assert (rejection.kind, rejection.detail) == (REJECTED, "Currency pair not supported (BTC/XYZ)")
    assert exchange.classify('{"error":"Exceeded msg rate","method":"ping","success":false}') == (ERROR, None)


@pytest.mark.parametrize(
    ("exchange", "frame", "kind"),
    [
        (Binance(["BTC-USDT"]), '{"e":"serverShutdown","E":1723161255343}', RECONNECT),
        (Binance(["BTC-USDT"]), '{"stream":"btcusdt@trade","data":{"e":"serverShutdown","E":1}}', RECONNECT),
        (Binance(["BTC-USDT"]), '{"result":null,"id":1}', CONTROL),
        (Okx(["BTC-USDT"]), '{"event":"notice","code":"64008","msg":"reconnect","connId":"a"}', RECONNECT),
        (Okx(["BTC-USDT"]), '{"event":"error","code":"60018","msg":"Wrong URL or channel","connId":"a"}', REJECTED),
        (Okx(["BTC-USDT"]), "pong", CONTROL),
        (Bybit(["BTC-USDT"]), '{"success":false,"ret_msg":"error:handler not found","op":"subscribe"}', REJECTED),
        (Bybit(["BTC-USDT"]), '{"success":true,"ret_msg":"pong","conn_id":"a","op":"ping"}', CONTROL),
        (Coinbase(["BTC-USD"]), '{"type":"error","message":"failure to subscribe"}', REJECTED),
        (CoinbaseExchange(["BTC-USD"]), '{"type":"error","message":"Failed","reason":"FOO-USD invalid"}', REJECTED),
        (
            KrakenV1(["BTC-USD"]),
            '{"errorMessage":"Currency pair not supported XBT/XYZ","event":"subscriptionStatus","pair":"XBT/XYZ",'
            '"status":"error","subscription":{"name":"trade"}}',
            REJECTED,
        ),
        (Coinbase(["BTC-USD"]), '{"channel":"market_trades","timestamp":"2026-08-09T21:05:48Z","events":[]}', CONTROL),
        (Kraken(["BTC-USD"]), "[1, 2]", ERROR),  # v1 shapes are unreadable to v2
        (Coinbase(["BTC-USD"]), "not json", ERROR),
    ],
)
def test_notices_rejections_pongs_and_garbage(exchange: Exchange, frame: str, kind: FrameKind) -> None:
    assert exchange.classify(frame)[0] is kind


def test_subscribe_messages_and_urls() -> None:
    assert Kraken(["BTC-USD", "ETH-USD"]).subscribe_messages() == [
        '{"method":"subscribe","params":{"channel":"trade","symbol":["BTC/USD","ETH/USD"],"snapshot":true}}'
    ]
    assert KrakenV1(["BTC-USD"]).subscribe_messages() == [
        '{"event":"subscribe","pair":["XBT/USD"],"subscription":{"name":"trade"}}'
    ]
    assert Coinbase(["BTC-USD"]).subscribe_messages() == [
        '{"type":"subscribe","product_ids":["BTC-USD"],"channel":"market_trades"}',
        '{"type":"subscribe","product_ids":["BTC-USD"],"channel":"heartbeats"}',
    ]
    assert CoinbaseExchange(["BTC-USD"]).subscribe_messages() == [
        '{"type":"subscribe","product_ids":["BTC-USD"],"channels":["matches","heartbeat"]}'
    ]
    twelve = [f"C{i}-USDT" for i in range(12)]
    assert [len(json.loads(m)["args"]) for m in Bybit(twelve).subscribe_messages()] == [10, 2]
    assert Okx(["BTC-USDT-SWAP"]).subscribe_messages() == [
        '{"op":"subscribe","args":[{"channel":"trades","instId":"BTC-USDT-SWAP"}]}'
    ]
    urls = {cls.feed: cls(["BTC-USDT"]).url(cls.endpoint) for cls in FEEDS.values()}
    assert urls == {
        "binance": "wss://stream.binance.com:9443/stream?streams=btcusdt@trade",
        "kraken": "wss://ws.kraken.com/v2",
        "kraken-v1": "wss://ws.kraken.com",
        "coinbase": "wss://advanced-trade-ws.coinbase.com",
        "coinbase-exchange": "wss://ws-feed.exchange.coinbase.com",
        "bybit": "wss://stream.bybit.com/v5/public/spot",
        "okx": "wss://ws.okx.com:8443/ws/v5/public",
    }
    assert Bybit(["BTC-USDT-SWAP"]).url("wss://stream.bybit.com") == "wss://stream.bybit.com/v5/public/linear"


def test_symbol_spellings() -> None:
    assert KrakenV1.venue_symbol("BTC-USD") == "XBT/USD"
    assert KrakenV1.venue_symbol("DOGE-EUR") == "XDG/EUR"
    assert KrakenV1.canonical_of("XBT/CHF", None) == "BTC-CHF"
    assert Kraken.venue_symbol("BTC-USD") == "BTC/USD"
    assert Bybit.venue_symbol("BTC-USDT-SWAP") == "BTCUSDT"
    assert Bybit.canonical_of("BTCUSDT", None) == "BTC-USDT-SWAP"
    assert Bybit.canonical_of("BTCUSDT", 12) == "BTC-USDT"
    assert Binance.canonical_of("ETHBTC", None) == "ETH-BTC"
    assert Binance.canonical_of("DOGEFDUSD", None) == "DOGE-FDUSD"


def test_connection_groups_follow_each_venues_limits() -> None:
    many = [f"C{i}-USDT" for i in range(1500)]
    assert [len(g) for g in Binance.connection_groups(many)] == [1024, 476]
    assert [len(g) for g in Kraken.connection_groups(many[:800])] == [800]
    groups = Bybit.connection_groups(["BTC-USDT", "BTC-USDT-SWAP", "ETH-USDT"])
    assert groups == [("BTC-USDT", "ETH-USDT"), ("BTC-USDT-SWAP",)]
    with pytest.raises(ValueError, match="separate connections"):
        Bybit(["BTC-USDT", "BTC-USDT-SWAP"])


def test_symbols_of_each_recording() -> None:
    def symbols(cls: type[Exchange], relative: str) -> list[str]:
        return cls.symbols_in(received_frames(relative))

    assert symbols(Binance, "binance/spot_ethusdt_trade_combined_20240808.replay.jsonl") == ["ETH-USDT"]
    assert symbols(KrakenV1, "kraken/v1_trade_session_20210417.replay.jsonl") == ["XMR-USD", "SC-EUR"]
    assert symbols(Bybit, "bybit/v5_spot_publicTrade_session.replay.jsonl") == ["ETH-USDT", "BTC-USDT"]
    assert symbols(Bybit, "bybit/v5_linear_publicTrade_session.replay.jsonl") == [
        "BTC-USDT-SWAP",
        "ETH-USDT-SWAP",
        "SOL-USDT-SWAP",
        "DOGE-USDT-SWAP",
    ]
