"""The local venue that replays recordings or serves synthetic venues: routes, Binance's stream filter, pings, shared
sequences."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager

import pytest
import websocket

from core.settings import Settings
from core.venues import FEEDS, Binance, FrameKind, Timing
from cryptolake.local.procs import free_port
from cryptolake.venue import recordings
from cryptolake.venue.replay import served_settings
from cryptolake.venue.server import LocalVenue, VenueThread, recorded_sequences, synthetic_sequences
from cryptolake.venue.synthetic import DEMO_VENUES, generate
from ingestion.config import connections
from tests import reference
from tests.fixtures import received_frames, recording
from tests.ingestion.harness import ingesting, wait_until

BTC = "binance/spot_btcusdt_trade_combined_20240808.replay.jsonl"
ETH = "binance/spot_ethusdt_trade_combined_20240808.replay.jsonl"
BYBIT_SPOT = "bybit/v5_spot_publicTrade_session.replay.jsonl"
BYBIT_LINEAR = "bybit/v5_linear_publicTrade_session.replay.jsonl"
OKX = "okx/v5_trades_session_20220513.replay.jsonl"


@contextmanager
def serving(*relative: str, repeat: int = 1) -> Iterator[str]:
    loaded = [recordings.load(recording(r)) for r in relative]
    venue = VenueThread(LocalVenue(recorded_sequences(loaded, float("inf"), repeat)))
    port = venue.start()
    try:
        yield f"ws://127.0.0.1:{port}"
    finally:
        venue.stop()


def read(url: str, count: int, send: str | None = None) -> list[str]:
    ws = websocket.create_connection(url, timeout=10)
    try:
        if send is not None:
            ws.send(send)
        return [ws.recv_data()[1].decode() for _ in range(count)]
    finally:
        ws.close()


def test_each_recording_is_served_at_its_venues_path() -> None:
    with serving(BYBIT_SPOT, BYBIT_LINEAR, OKX) as url:
        spot = list(received_frames(BYBIT_SPOT))
        assert read(f"{url}/bybit/v5/public/spot", len(spot)) == spot
        linear = list(received_frames(BYBIT_LINEAR))
        assert read(f"{url}/bybit/v5/public/linear", 5) == linear[:5]
        assert read(f"{url}/okx/ws/v5/public", 3) == list(received_frames(OKX))[:3]


def test_binance_streams_are_filtered_by_the_url_and_served_at_the_root_too() -> None:
    with serving(BTC, ETH) as url:
        assert read(f"{url}/stream?streams=ethusdt@trade", 50) == list(received_frames(ETH))[:50]
    with serving(BTC, ETH) as url:
        both = read(f"{url}/binance/stream?streams=btcusdt@trade/ethusdt@trade", 500)
        assert {json.loads(f)["stream"] for f in both} == {"btcusdt@trade", "ethusdt@trade"}


def test_repeat_plays_the_recordings_again() -> None:
    spot = list(received_frames(BYBIT_SPOT))
    with serving(BYBIT_SPOT, repeat=2) as url:
        assert read(f"{url}/bybit/v5/public/spot", 2 * len(spot)) == spot + spot


@pytest.mark.parametrize(
    ("path", "ping", "pong"),
    [
        ("/okx/ws/v5/public", "ping", "pong"),
        ("/bybit/v5/public/spot", '{"op":"ping"}', '{"success":true,"ret_msg":"pong","conn_id":"local","op":"ping"}'),
    ],
)
def test_application_pings_are_answered(path: str, ping: str, pong: str) -> None:
    with serving(OKX, BYBIT_SPOT) as url:
        count = len(list(received_frames(OKX if path.startswith("/okx") else BYBIT_SPOT)))
        frames = read(f"{url}{path}", count + 1, send=ping)
    assert frames.count(pong) == 1


def test_an_unknown_path_is_refused() -> None:
    with serving(OKX) as url:
        ws = websocket.create_connection(f"{url}/kraken/v2", timeout=10)
        opcode, data = ws.recv_data()
    assert opcode == websocket.ABNF.OPCODE_CLOSE
    assert int.from_bytes(data[:2], "big") == 1008
    assert data[2:] == b"no feed at /kraken/v2"


def test_a_finished_recording_keeps_its_client_connected_and_idle() -> None:
    sequences = recorded_sequences([recordings.load(recording(BTC))], float("inf"))
    venue = VenueThread(LocalVenue(sequences, keepalive=0.2))
    port = venue.start()
    exchange = Binance(["BTC-USDT"])
    exchange.timing = Timing(silence=1.0)  # the watchdog would fire at once on a silent connection
    try:
        with ingesting(exchange, f"ws://127.0.0.1:{port}") as running:
            wait_until(lambda: sequences[0].complete, "the recording played to its end")
            ended = time.monotonic()

            def reconnected_or_idle_long() -> bool:
                return running.metric("reconnects_total", exchange="binance") > 0 or time.monotonic() - ended > 4.0

            wait_until(reconnected_or_idle_long, "a reconnect, or four silence periods without one")
            assert running.metric("reconnects_total", exchange="binance") == 0
            assert running.ingestor.unready() == []
    finally:
        venue.stop()


def test_a_held_synthetic_feed_sends_the_first_frames_then_the_rest_on_sigusr1() -> None:
    """The venue process holds back all but the first frames until it gets SIGUSR1 (tier 2 kills a driver while the
    rest is held); what it sends in all is the synthetic stream, once and in order."""
    port = free_port()
    args = ["--port", str(port), "--symbols", "BTC-USDT", "--count", "10", "--seed", "3", "--start-ms", "0"]
    args += ["--speed", "max", "--hold-after", "4"]
    venue = subprocess.Popen(
        [sys.executable, "-m", "cryptolake.venue.server", *args], stdout=subprocess.PIPE, text=True
    )
    assert venue.stdout is not None
    try:
        lines = (json.loads(line) for line in venue.stdout)
        assert next(line for line in lines if line["event"] in ("listening", "holding"))["event"] == "listening"
        ws = websocket.create_connection(f"ws://127.0.0.1:{port}/stream?streams=btcusdt@trade", timeout=30)
        try:
            first = [ws.recv_data()[1].decode() for _ in range(4)]
            assert next(line for line in lines if line["event"] == "holding")["sent"] == 4
            venue.send_signal(signal.SIGUSR1)
            rest = [ws.recv_data()[1].decode() for _ in range(6)]
        finally:
            ws.close()
    finally:
        venue.terminate()
        venue.wait(10)
    expected = [t.frame() for t in generate(["BTC-USDT"], seed=3, start_ms=0, rate=200.0, count=10)]
    assert first + rest == expected


def test_each_synthetic_venue_is_served_in_its_own_protocol() -> None:
    """Each venue's feed where the ingestor, set up as `cryptolake up` sets it up, connects: its parser reads every
    frame as a trade of the symbol the venue traded, and the tests' reference reads the venue's trades back."""
    symbols = ("BTC-USDT", "ETH-USDT")
    start_ms = 1_723_161_255_342
    trades = list(generate(symbols, seed=5, start_ms=start_ms, rate=50.0, count=400, venues=DEMO_VENUES))
    sequences = synthetic_sequences(
        DEMO_VENUES, symbols, seed=5, start_ms=start_ms, rate=50.0, count=400, speed=float("inf")
    )
    venue = VenueThread(LocalVenue(sequences))
    port = venue.start()
    try:
        served = {FEEDS[name]: symbols for name in DEMO_VENUES}
        wanted = connections(served_settings(Settings(symbols=symbols), served, f"ws://127.0.0.1:{port}"))
        assert sorted(c.exchange.name for c in wanted) == sorted(DEMO_VENUES)
        for connection in wanted:
            name = connection.exchange.name
            sent = [t for t in trades if t.venue == name]
            frames = read(connection.url, len(sent))
            parsed = [connection.exchange.parse(frame) for frame in frames]
            assert {p.kind for p in parsed} == {FrameKind.TRADE}
            assert [p.symbol for p in parsed] == [t.symbol for t in sent]
            read_back = [t for f, p in zip(frames, parsed, strict=True) for t in reference.trades_of(name, f, p.symbol)]
            assert read_back == [reference.from_synthetic(t, name) for t in sent]
    finally:
        venue.stop()
