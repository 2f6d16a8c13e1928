"""Gap fill: each venue's REST answers as its own WS frames, and the filler's paging, pacing, retries and accounting."""

from __future__ import annotations

import dataclasses
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from decimal import Decimal
from urllib.parse import parse_qsl, urlsplit

import pytest

from core.venues import LAKE_VENUES, Binance, Bybit, Coinbase, Kraken, LakeVenue, Okx, RestQuery, RestTrade
from cryptolake.venue import recordings
from cryptolake.venue.server import Cut, LocalVenue, VenueThread, recorded_sequences
from ingestion.fill import Filler, http_get
from ingestion.gaps import GapTracker, Hole
from ingestion.metrics import Metrics
from tests import reference
from tests.fixtures import received_frames, recording
from tests.ingestion.harness import Sent, ingesting, wait_until

BTC = "binance/spot_btcusdt_trade_combined_20240808.replay.jsonl"
FILLING = [Binance, Kraken, Coinbase, Bybit]

# Each venue's REST answer as its documentation shows one, and the trades in it as a reader of that documentation
# takes them: (id, price, size, taker side, time in us).
SAMPLES: dict[str, tuple[str, list[tuple[int, str, str, str, int]]]] = {
    "binance": (
        '[{"id":3735683259,"price":"61837.63000000","qty":"0.02000000","quoteQty":"1236.75260000",'
        '"time":1723161255342,"isBuyerMaker":true,"isBestMatch":true},{"id":3735683260,"price":"61837.64000000",'
        '"qty":"0.04800000","quoteQty":"2968.20672000","time":1723161255617,"isBuyerMaker":false,"isBestMatch":true}]',
        [
            (3735683259, "61837.63", "0.02", "sell", 1723161255342000),
            (3735683260, "61837.64", "0.048", "buy", 1723161255617000),
        ],
    ),
    "kraken": (
        '{"error":[],"result":{"XXBTZUSD":[["30243.40000","0.34507674",1688669597.8277369,"b","m","",61044952],'
        '["30243.30000","0.00376960",1688669598.280411,"s","l","",61044953]],"last":"1688671969993150842"}}',
        [
            (61044952, "30243.4", "0.34507674", "buy", 1688669597827736),
            (61044953, "30243.3", "0.0037696", "sell", 1688669598280411),
        ],
    ),
    "coinbase": (
        '{"trades":[{"trade_id":"1068572092","product_id":"BTC-USD","price":"65083.68","size":"0.5",'
        '"time":"2026-08-09T21:05:49.000001Z","side":"BUY","bid":"","ask":""},{"trade_id":"1068572091",'
        '"product_id":"BTC-USD","price":"65083.67","size":"0.01034361","time":"2026-08-09T21:05:48.167634Z",'
        '"side":"SELL","bid":"","ask":""}],"best_bid":"65083.66","best_ask":"65083.67"}',
        [
            (1068572091, "65083.67", "0.01034361", "buy", 1786309548167634),
            (1068572092, "65083.68", "0.5", "sell", 1786309549000001),
        ],
    ),
    "bybit": (
        '{"retCode":0,"retMsg":"OK","result":{"category":"spot","list":[{"execId":"2280000001739247418",'
        '"symbol":"ETHUSDT","price":"1923.29","size":"0.1","side":"Buy","time":"1786310821918","isBlockTrade":false},'
        '{"execId":"2280000001739247417","symbol":"ETHUSDT","price":"1923.28","size":"0.04537","side":"Sell",'
        '"time":"1786310821917","isBlockTrade":false}]},"retExtInfo":{},"time":1786310822000}',
        [
            (2280000001739247417, "1923.28", "0.04537", "sell", 1786310821917000),
            (2280000001739247418, "1923.29", "0.1", "buy", 1786310821918000),
        ],
    ),
}
SYMBOLS = {"binance": "BTC-USDT", "kraken": "BTC-USD", "coinbase": "BTC-USD", "bybit": "ETH-USDT"}


@pytest.mark.parametrize("venue", FILLING, ids=lambda v: v.name)
def test_a_rest_answer_becomes_frames_silver_reads_as_the_same_trades(venue: type[LakeVenue]) -> None:
    body, expected = SAMPLES[venue.name]
    symbol = SYMBOLS[venue.name]
    frames = venue.filled_frames(symbol, venue.rest_trades(body))
    got = [t for frame in frames for t in reference.trades_of(venue.name, frame, symbol) or []]
    assert [(int(t.trade_id), t.price, t.size, t.side, t.time_us) for t in got] == [
        (i, Decimal(p), Decimal(s), side, us) for i, p, s, side, us in expected
    ]
    # The ingestor reads them as trades of the symbol, with their ids, like frames it receives.
    reader = venue([symbol])
    assert [pair for frame in frames for pair in reader.parse(frame).trades] == [(symbol, e[0]) for e in expected]


@pytest.mark.parametrize("venue", FILLING, ids=lambda v: v.name)
def test_the_local_venue_reads_the_request_the_filler_makes(venue: type[LakeVenue]) -> None:
    assert venue.rest is not None
    symbol = SYMBOLS[venue.name]
    query = RestQuery(
        symbol,
        venue.rest.page,
        from_id=7 if venue.rest.by == "id" else None,
        after_us=1_700_000_000_123_456 if venue.rest.by == "time" else None,
    )
    url = urlsplit(venue.rest_request(query))
    read = venue.rest_query(url.path, dict(parse_qsl(url.query)))
    assert read == dataclasses.replace(query, symbol=venue.rest_symbol(symbol))
    assert venue.rest_query("/elsewhere", {}) is None


@pytest.mark.parametrize("venue", FILLING, ids=lambda v: v.name)
def test_the_local_venues_answer_reads_back_as_the_trades_it_lists(venue: type[LakeVenue]) -> None:
    trades = [
        RestTrade(11, "100.5", "0.25", True, 1_700_000_000_000_000),
        RestTrade(12, "99", "1", False, 1_700_000_000_001_000),
    ]
    assert venue.rest_trades(venue.rest_answer(SYMBOLS[venue.name], trades)) == trades


@pytest.mark.parametrize(
    ("venue", "error"),
    [
        (Binance, '{"code":-1121,"msg":"Invalid symbol."}'),
        (Kraken, '{"error":["EQuery:Unknown asset pair"]}'),
        (Coinbase, '{"error":"NOT_FOUND","message":"product not found"}'),
        (Bybit, '{"retCode":10001,"retMsg":"params error","result":{}}'),
    ],
    ids=lambda v: getattr(v, "name", "error"),
)
def test_a_venues_error_answer_is_an_error(venue: type[LakeVenue], error: str) -> None:
    with pytest.raises(ValueError, match=r"\w"):
        venue.rest_trades(error)


def test_venues_without_counted_ids_fill_nothing() -> None:
    assert Okx.rest is None
    assert {name for name, cls in LAKE_VENUES.items() if cls.rest is not None} == {v.name for v in FILLING}


class FakeRest:
    """A venue's REST API over a list of trades, as the venue pages them; records when each request came."""

    def __init__(self, venue: type[LakeVenue], trades: list[RestTrade], failures: int = 0) -> None:
        self.venue = venue
        self.trades = trades
        self.failures = failures
        self.times: list[float] = []

    def __call__(self, url: str) -> str:
        self.times.append(time.monotonic())
        if self.failures:
            self.failures -= 1
            raise OSError("HTTP Error 503: Service Unavailable")
        parts = urlsplit(url)
        query = self.venue.rest_query(parts.path, dict(parse_qsl(parts.query)))
        assert query is not None and self.venue.rest is not None and query.limit <= self.venue.rest.page
        if query.from_id is not None:
            listed = [t for t in self.trades if t.trade_id >= query.from_id][: query.limit]
        elif query.after_us is not None:
            listed = [t for t in self.trades if t.time_us > query.after_us][: query.limit]
        else:
            listed = self.trades[-query.limit :]
        return self.venue.rest_answer(query.symbol, listed)


def trades(first: int, last: int) -> list[RestTrade]:
    return [RestTrade(i, "10.5", "1", i % 2 == 0, 1_700_000_000_000_000 + i * 1000) for i in range(first, last + 1)]


@contextmanager
def filling(
    venue: type[LakeVenue], rest: FakeRest, **options: float
) -> Iterator[tuple[Filler, GapTracker, Sent, Metrics]]:
    metrics, sent, stop = Metrics(), Sent(), threading.Event()
    filler = Filler(venue, "http://rest.test", sent, metrics, stop, fetch=rest, retry_seconds=0.01, **options)  # type: ignore[arg-type]
    yield filler, GapTracker(venue.name, metrics, fill=filler.offer), sent, metrics
    stop.set()


def sent_ids(venue: type[LakeVenue], sent: Sent, symbol: str) -> list[int]:
    return [int(t.trade_id) for f in sent.filled for t in reference.trades_of(venue.name, f, symbol) or []]


@pytest.mark.parametrize("venue", [Binance, Kraken], ids=lambda v: v.name)
def test_a_hole_is_filled_page_by_page_with_only_its_own_trades(venue: type[LakeVenue]) -> None:
    rest = FakeRest(venue, trades(1, 3000))
    with filling(venue, rest, per_second=1000) as (filler, tracker, sent, metrics):
        # Ids 101 to 2600 missing; the trade before the hole made at its time, as the WebSocket said.
        filler.fill(tracker, "BTC-USDT", Hole(101, 2600, 0.0, after_us=1_700_000_000_100_000))
    assert sent_ids(venue, sent, "BTC-USDT") == list(range(101, 2601))
    assert metrics.value("filled_trades_total", exchange=venue.name, symbol="BTC-USDT") == 2500
    assert metrics.value("missing_trades_total", exchange=venue.name, symbol="BTC-USDT") == 0
    assert 3 <= len(rest.times) <= 4  # pages of 1000 (Kraken's start a little before the hole)


def test_a_venue_listing_only_recent_trades_fills_what_it_lists_and_counts_the_rest() -> None:
    rest = FakeRest(Bybit, trades(1, 1000))  # the latest 60: ids 941 to 1000
    with filling(Bybit, rest) as (filler, tracker, sent, metrics):
        filler.fill(tracker, "ETH-USDT", Hole(901, 950, 0.0, after_us=0))
    assert sent_ids(Bybit, sent, "ETH-USDT") == list(range(941, 951))
    labels = {"exchange": "bybit", "symbol": "ETH-USDT"}
    assert metrics.value("unfilled_trades_total", **labels, reason="not listed") == 40
    assert metrics.value("missing_trades_total", **labels) == 40
    assert metrics.value("gaps_total", **labels) == 1
    assert len(rest.times) == 1


def test_requests_keep_to_the_pace_given() -> None:
    rest = FakeRest(Binance, trades(1, 5000))
    with filling(Binance, rest, per_second=20) as (filler, tracker, _, _):
        filler.fill(tracker, "BTC-USDT", Hole(1, 4000, 0.0, after_us=0))
    gaps = [b - a for a, b in zip(rest.times, rest.times[1:], strict=False)]
    assert len(rest.times) == 4 and min(gaps) >= 0.05 - 0.005


def test_failed_requests_are_tried_a_few_times_then_the_hole_counted_missing() -> None:
    rest = FakeRest(Binance, trades(1, 100), failures=1000)
    with filling(Binance, rest, per_second=1000) as (filler, tracker, sent, metrics):
        started = time.monotonic()
        filler.fill(tracker, "BTC-USDT", Hole(10, 19, 0.0, after_us=0))
        assert time.monotonic() - started < 5
    labels = {"exchange": "binance", "symbol": "BTC-USDT"}
    assert len(rest.times) == 4 and not sent.filled
    assert metrics.value("fill_requests_total", exchange="binance", outcome="error") == 4
    assert metrics.value("unfilled_trades_total", **labels, reason="requests failed") == 10
    assert metrics.value("missing_trades_total", **labels) == 10
    # A failure now and then costs a retry, not the gap.
    rest.failures = 2
    with filling(Binance, rest, per_second=1000) as (filler, tracker, sent, metrics):
        filler.fill(tracker, "BTC-USDT", Hole(10, 19, 0.0, after_us=0))
    assert sent_ids(Binance, sent, "BTC-USDT") == list(range(10, 20))


def test_ids_seen_late_are_not_fetched_and_a_full_queue_never_waits() -> None:
    now = [0.0]
    offered: list[tuple[int, int]] = []

    def offer(_: GapTracker, symbol: str, hole: Hole) -> bool:
        offered.append((hole.first, hole.last))
        return len(offered) == 1  # the second finds the queue full

    metrics = Metrics()
    tracker = GapTracker("binance", metrics, grace=5.0, clock=lambda: now[0], fill=offer)
    for trade_id in (1, 2, 6, 4, 9):  # 4 comes late; 3, 5, 7 and 8 never
        tracker.observe("BTC-USDT", trade_id)
    now[0] = 10.0
    tracker.sweep()
    assert offered == [(3, 3), (5, 5), (7, 8)]
    assert metrics.value("missing_trades_total", exchange="binance", symbol="BTC-USDT") == 3  # the holes not taken


def test_a_hole_offered_to_a_full_queue_is_counted_at_once() -> None:
    rest = FakeRest(Binance, trades(1, 10))
    with filling(Binance, rest, queued=1) as (filler, tracker, _, metrics):
        assert filler.offer(tracker, "BTC-USDT", Hole(1, 2, 0.0, 0))
        assert not filler.offer(tracker, "BTC-USDT", Hole(4, 6, 0.0, 0))
    assert metrics.value("unfilled_trades_total", exchange="binance", symbol="BTC-USDT", reason="queue full") == 3


def recording_ids(relative: str) -> set[int]:
    return {t for f in received_frames(relative) for _, t in Binance(["BTC-USDT"]).parse(f).trades if t is not None}


@contextmanager
def cut_venue(after: int, missed: int, speed: float = float("inf")) -> Iterator[int]:
    sequences = recorded_sequences([recordings.load(recording(BTC))], speed, cut=Cut(after, missed))
    venue = VenueThread(LocalVenue(sequences))
    port = venue.start()
    try:
        yield port
    finally:
        venue.stop()


def test_the_local_venue_serves_the_trades_played_so_far_over_rest() -> None:
    with cut_venue(after=2000, missed=1500) as port, ingesting(Binance(["BTC-USDT"]), f"ws://127.0.0.1:{port}") as run:
        wait_until(lambda: run.metric("missing_trades_total", exchange="binance", symbol="BTC-USDT") == 1500, "the cut")
        first = min(recording_ids(BTC))
        base = f"http://127.0.0.1:{port}/binance"
        listed = Binance.rest_trades(
            http_get(f"{base}/api/v3/historicalTrades?symbol=BTCUSDT&fromId={first}&limit=5000")
        )
        assert [t.trade_id for t in listed] == list(range(first, first + 1000))  # Binance's page size
        with pytest.raises(OSError, match="404"):
            http_get(f"{base}/api/v3/nothing")


@pytest.mark.parametrize("fill", [True, False], ids=["filled", "not filled"])
def test_a_connection_cut_mid_recording_misses_nothing_once_filled(fill: bool) -> None:
    """The local venue cuts the ingestor after 2,000 frames and trades 1,500 more while it reconnects, replaying the
    recording at 100 times its pace (3.5 s): the reconnect comes while the venue still plays to nobody."""
    with cut_venue(after=2000, missed=1500, speed=100) as port:
        urls = {"binance": f"http://127.0.0.1:{port}/binance"} if fill else {}
        with ingesting(Binance(["BTC-USDT"]), f"ws://127.0.0.1:{port}", rest_urls=urls) as run:
            labels = {"exchange": "binance", "symbol": "BTC-USDT"}
            expected = recording_ids(BTC)

            def done() -> bool:
                return len(set(run.sent.binance_ids())) + run.metric("missing_trades_total", **labels) >= len(expected)

            wait_until(done, "every trade of the recording sent or counted missing", 60)
            assert run.metric("reconnects_total", exchange="binance") == 1
            if fill:
                assert set(run.sent.binance_ids()) == expected
                assert len(run.sent.filled) == run.metric("filled_trades_total", **labels) == 1500
                assert run.metric("missing_trades_total", **labels) == 0
            else:
                assert len(expected - set(run.sent.binance_ids())) == 1500
                assert run.metric("missing_trades_total", **labels) == 1500


def test_holes_still_queued_when_the_ingestor_stops_are_counted() -> None:
    rest = FakeRest(Binance, trades(1, 10))
    with filling(Binance, rest) as (filler, tracker, sent, metrics):
        filler.offer(tracker, "BTC-USDT", Hole(2, 4, 0.0, 0))
        filler._stop.set()
        filler.start()
        filler.join(5)
    assert not rest.times and not sent.filled
    assert metrics.value("unfilled_trades_total", exchange="binance", symbol="BTC-USDT", reason="stopped") == 3
    assert metrics.value("missing_trades_total", exchange="binance", symbol="BTC-USDT") == 3
