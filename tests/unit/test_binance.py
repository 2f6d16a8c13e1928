import json

from core.venues import Binance, FrameKind
from tests.fixtures import received_frames

BTC = "binance/spot_btcusdt_trade_combined_20240808.replay.jsonl"
ETH = "binance/spot_ethusdt_trade_combined_20240808.replay.jsonl"


def test_url_subscribes_every_symbol_through_the_combined_stream() -> None:
    url = Binance(["BTC-USDT", "ETH-USDT"]).url("wss://stream.binance.com:9443/")
    assert url == "wss://stream.binance.com:9443/stream?streams=btcusdt@trade/ethusdt@trade"


def test_every_recorded_frame_is_a_trade_keyed_by_its_canonical_symbol() -> None:
    exchange = Binance(["BTC-USDT", "ETH-USDT"])
    for relative, symbol, expected in ((BTC, "BTC-USDT", 9757), (ETH, "ETH-USDT", 6106)):
        kinds = [exchange.classify(frame) for frame in received_frames(relative)]
        assert kinds == [(FrameKind.TRADE, symbol)] * expected
    assert exchange.kafka_key("BTC-USDT") == b"binance:BTC-USDT"


def test_acks_errors_and_garbage_are_not_trades() -> None:
    exchange = Binance(["BTC-USDT"])
    assert exchange.classify('{"result":null,"id":1}') == (FrameKind.CONTROL, None)
    assert exchange.classify('{"error":{"code":2,"msg":"Invalid request"},"id":1}') == (FrameKind.ERROR, None)
    assert exchange.classify("not json") == (FrameKind.ERROR, None)
    assert exchange.classify("[1, 2]") == (FrameKind.CONTROL, None)


def test_unconfigured_symbol_keeps_the_venue_spelling() -> None:
    frame = json.dumps({"stream": "solusdt@trade", "data": {}})
    assert Binance(["BTC-USDT"]).classify(frame) == (FrameKind.TRADE, "SOLUSDT")
