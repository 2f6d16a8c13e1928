"""From settings to connections: venues, symbols, URLs."""

from __future__ import annotations

import pytest

from core.settings import Settings, SettingsError
from ingestion.config import connections, rest_urls


def test_default_is_binance_at_its_url_with_the_symbols_setting() -> None:
    (only,) = connections(Settings(binance_url="ws://127.0.0.1:9", symbols=("BTC-USDT", "SOL-USDT")))
    assert only.url == "ws://127.0.0.1:9/stream?streams=btcusdt@trade/solusdt@trade"
    assert only.exchange.name == "binance"


def test_each_venue_takes_its_own_symbols_and_public_endpoint() -> None:
    settings = Settings.from_env(
        {
            "CRYPTOLAKE_VENUES": "kraken,coinbase,bybit,okx",
            "CRYPTOLAKE_KRAKEN_SYMBOLS": "BTC-USD,ETH-EUR",
            "CRYPTOLAKE_COINBASE_SYMBOLS": "SOL-USD",
            "CRYPTOLAKE_BYBIT_SYMBOLS": "BTC-USDT,BTC-USDT-SWAP,ETH-USDT-SWAP",
            "CRYPTOLAKE_OKX_SYMBOLS": "BTC-USDT,BTC-USDT-SWAP",
        }
    )
    found = [(c.exchange.feed, c.exchange.symbols, c.url) for c in connections(settings)]
    assert found == [
        ("kraken", ("BTC-USD", "ETH-EUR"), "wss://ws.kraken.com/v2"),
        ("coinbase", ("SOL-USD",), "wss://advanced-trade-ws.coinbase.com"),
        ("bybit", ("BTC-USDT",), "wss://stream.bybit.com/v5/public/spot"),
        ("bybit", ("BTC-USDT-SWAP", "ETH-USDT-SWAP"), "wss://stream.bybit.com/v5/public/linear"),
        ("okx", ("BTC-USDT", "BTC-USDT-SWAP"), "wss://ws.okx.com:8443/ws/v5/public"),
    ]


def test_a_local_venue_serves_every_feed_under_its_name() -> None:
    settings = Settings(venues=("binance", "kraken", "kraken-v1"), venue_url="ws://127.0.0.1:7/")
    urls = [c.url for c in connections(settings)]
    assert urls == [
        "ws://127.0.0.1:7/binance/stream?streams=btcusdt@trade/ethusdt@trade",
        "ws://127.0.0.1:7/kraken/v2",
        "ws://127.0.0.1:7/kraken-v1",
    ]


def test_an_unknown_venue_names_the_setting_and_the_known_ones() -> None:
    with pytest.raises(SettingsError, match=r"CRYPTOLAKE_VENUES: unknown venue 'binanse'; known: binance, kraken"):
        connections(Settings(venues=("binanse",)))


def test_gaps_are_filled_from_each_venues_public_rest_api_unless_set_otherwise() -> None:
    venues = ("binance", "kraken", "coinbase", "bybit", "okx", "kraken-v1")
    assert rest_urls(Settings(venues=venues)) == {
        "binance": "https://api.binance.com",
        "kraken": "https://api.kraken.com",
        "coinbase": "https://api.coinbase.com",
        "bybit": "https://api.bybit.com",
    }  # OKX counts no gaps, and Kraken's v1 feed no ids
    chosen = Settings(venues=venues, rest_urls=("binance=https://api.binance.us", "kraken=off"))
    assert rest_urls(chosen) == {
        "binance": "https://api.binance.us",
        "coinbase": "https://api.coinbase.com",
        "bybit": "https://api.bybit.com",
    }


def test_a_local_venue_serves_the_fills_too() -> None:
    settings = Settings(venues=("binance", "kraken-v1", "coinbase"), venue_url="ws://127.0.0.1:7/")
    assert rest_urls(settings) == {"binance": "http://127.0.0.1:7/binance", "coinbase": "http://127.0.0.1:7/coinbase"}
    assert rest_urls(settings.with_(rest_urls=("coinbase=off",))) == {"binance": "http://127.0.0.1:7/binance"}
