"""Connections against a scripted local venue: drops, silence, shutdown notices, rejections, bad frames, pings.

In every case the ingestor recovers, reports what happened, and forwards every trade frame it received.
"""

from __future__ import annotations

import asyncio
import functools
import itertools
import logging
import random
import threading
from collections.abc import Callable

import pytest
from websockets.asyncio.server import ServerConnection
from websockets.frames import Frame, Opcode

from core.venues import Binance, Bybit, Kraken, Okx, Timing
from ingestion import connection
from ingestion.connection import Backoff
from tests.ingestion.frames import (
    KRAKEN_HEARTBEAT,
    binance_trade,
    kraken_ack,
    kraken_rejection,
    kraken_trades,
    okx_trade,
    trade_id,
)
from tests.ingestion.harness import ingesting, wait_until
from tests.ingestion.scripted import LiveFeed, ScriptedVenue, Seen, answers, drop, hold, send_raw, sends

HEARTBEATS_AFTER = 10  # 2 s of the venue's heartbeats: longer than the first retry's longest delay
RETRIES = 4
BACKOFF_SEED = 5
KRAKEN_SUBSCRIBE = '{"method":"subscribe","params":{"channel":"trade","symbol":["BTC/USD"],"snapshot":true}}'


def binance(max_age: float | None = None) -> Binance:
    exchange = Binance(["BTC-USDT"])
    exchange.timing = Timing(silence=5.0, max_age=max_age)
    return exchange


def kraken(silence: float = 5.0) -> Kraken:
    exchange = Kraken(["BTC-USD"])
    exchange.timing = Timing(silence=silence)
    return exchange


async def heartbeats(ws: ServerConnection, _seen: Seen) -> None:
    while True:
        await ws.send(KRAKEN_HEARTBEAT)
        await asyncio.sleep(0.2)


def test_a_dropped_connection_is_reopened_resubscribed_and_its_snapshot_counted_as_duplicates() -> None:
    first = sends(
        kraken_ack("BTC/USD"),
        kraken_trades("BTC/USD", range(1, 4), "snapshot"),
        kraken_trades("BTC/USD", [4, 5]),
        then=drop,
        after_request=True,
    )
    second = sends(
        kraken_ack("BTC/USD"),
        kraken_trades("BTC/USD", range(3, 6), "snapshot"),
        kraken_trades("BTC/USD", [6]),
        then=heartbeats,
        after_request=True,
    )
    with ScriptedVenue(first, second) as venue, ingesting(kraken(), venue.url) as run:
        wait_until(lambda: 6 in run.sent.kraken_ids(), "the trade after the reconnect")
        assert run.sent.kraken_ids() == [1, 2, 3, 4, 5, 3, 4, 5, 6]
        assert [seen.messages[0] for seen in venue.seen] == [KRAKEN_SUBSCRIBE, KRAKEN_SUBSCRIBE]
        assert run.metric("reconnects_total", exchange="kraken") == 1
        assert run.metric("duplicate_trades_total", exchange="kraken", symbol="BTC-USD") == 3
        assert run.metric("gaps_total", exchange="kraken", symbol="BTC-USD") == 0
        assert run.metric("trades_total", exchange="kraken", symbol="BTC-USD") == 9
        assert run.metric("connections", exchange="kraken") == 1


def test_a_gap_across_a_reconnect_is_counted_and_its_first_and_last_missing_ids_logged(
    caplog: pytest.LogCaptureFixture,
) -> None:
    first = sends(*(binance_trade(i) for i in (1, 2, 3)), then=drop)
    second = sends(*(binance_trade(i) for i in (7, 8)))
    with (
        caplog.at_level(logging.WARNING),
        ScriptedVenue(first, second) as venue,
        ingesting(binance(), venue.url) as run,
    ):
        wait_until(lambda: run.metric("gaps_total", exchange="binance", symbol="BTC-USDT") == 1, "the gap")
        assert run.sent.binance_ids() == [1, 2, 3, 7, 8]
        assert run.metric("missing_trades_total", exchange="binance", symbol="BTC-USDT") == 3
    gap = next(r for r in caplog.records if r.getMessage() == "trades missing")
    fields = gap.__dict__["fields"]
    assert (fields["first_missing_id"], fields["last_missing_id"], fields["missing"]) == (4, 6, 3)


def test_a_silent_connection_is_replaced() -> None:
    silent = sends(kraken_ack("BTC/USD"), kraken_trades("BTC/USD", [1]))  # then holds, saying nothing
    lively = sends(kraken_ack("BTC/USD"), kraken_trades("BTC/USD", [2]), then=heartbeats)
    with ScriptedVenue(silent, lively) as venue, ingesting(kraken(silence=1.0), venue.url) as run:
        wait_until(lambda: run.sent.kraken_ids() == [1, 2], "the trade of the second connection")
        assert len(venue.seen) == 2
        assert venue.seen[0].closed is not None, "the silent connection was closed"
        assert run.metric("reconnects_total", exchange="kraken") == 1


@pytest.mark.parametrize(
    ("exchange", "notice", "trade"),
    [
        (binance(), '{"e":"serverShutdown","E":1723161255343}', binance_trade),
        (
            Okx(["BTC-USDT"]),
            '{"event":"notice","code":"64008","msg":"The connection will soon be closed for a service upgrade.",'
            '"connId":"a4d3ae55"}',
            okx_trade,
        ),
    ],
    ids=["binance serverShutdown", "okx 64008"],
)
def test_a_shutdown_notice_hands_over_to_a_new_connection_opened_before_the_old_one_closes(
    exchange: Binance | Okx, notice: str, trade: Callable[[int], str]
) -> None:
    live = LiveFeed(trade, count=30, interval=0.1)
    # The venue announces the cut after 5 trades and makes it 1.5 s later; the replacement must overlap.
    scripts = (live.follow(notice, after=5, cut_after=1.5), live.follow())
    with ScriptedVenue(*scripts) as venue, ingesting(exchange, venue.url) as run:
        wait_until(lambda: live.published == live.count, "the whole live feed")
        wait_until(lambda: live.count in {trade_id(f) for f in run.sent.frames()}, "its last trade")
        assert {trade_id(f) for f in run.sent.frames()} == set(range(1, live.count + 1)), "none missed"
        assert run.metric("handovers_total", exchange=exchange.name) == 1
        assert run.metric("reconnects_total", exchange=exchange.name) == 0
    first, second = venue.seen[:2]
    assert first.closed is not None and second.opened < first.closed, "both were open at once"
    assert len(venue.seen) == 2


def test_an_old_connection_is_replaced_before_the_venues_age_limit() -> None:
    live = LiveFeed(binance_trade, count=40, interval=0.1)
    with ScriptedVenue(live.follow()) as venue, ingesting(binance(max_age=1.0), venue.url) as run:
        wait_until(lambda: live.published == live.count, "the whole live feed")
        wait_until(lambda: live.count in run.sent.binance_ids(), "its last trade")
        assert set(run.sent.binance_ids()) == set(range(1, live.count + 1)), "none missed"
        assert run.metric("handovers_total", exchange="binance") >= 2
        assert run.metric("reconnects_total", exchange="binance") == 0
    closed = venue.seen[0].closed
    assert closed is not None and venue.seen[1].opened < closed


def test_a_rejected_subscription_is_logged_and_the_connection_kept_without_retrying(
    caplog: pytest.LogCaptureFixture,
) -> None:
    reject = sends(kraken_rejection("BTC/USD"), then=heartbeats)
    with caplog.at_level(logging.ERROR), ScriptedVenue(reject) as venue, ingesting(kraken(), venue.url) as run:
        wait_until(lambda: run.metric("subscription_rejections_total", exchange="kraken") == 1, "the rejection")
        # A link that gave up on the rejected connection would close it before reading on: the heartbeats read after
        # the rejection then come from no connection, or from a new one.
        read = run.metric("control_frames_total", exchange="kraken")
        wait_until(
            lambda: run.metric("control_frames_total", exchange="kraken") >= read + HEARTBEATS_AFTER,
            "heartbeats read after the rejection",
        )
        assert len(venue.seen) == 1, "no reconnect while the venue keeps the connection"
        assert venue.seen[0].closed is None
        assert run.metric("subscription_rejections_total", exchange="kraken") == 1
    logged = [r for r in caplog.records if "rejected a subscription" in r.getMessage()]
    assert logged and "Currency pair not supported (BTC/USD)" in logged[0].__dict__["fields"]["venue_says"]


def test_a_venue_that_rejects_and_closes_is_retried_with_growing_delays_not_in_a_loop(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    async def reject_and_close(ws: ServerConnection, _seen: Seen) -> None:
        await ws.send(kraken_rejection("BTC/USD"))
        await ws.close()

    monkeypatch.setattr(connection, "Backoff", functools.partial(Backoff, rng=random.Random(BACKOFF_SEED)))
    # Full jitter from 0.5 s doubling: the n-th retry waits a uniform draw below 0.5 * 2**n (this seed's draws grow).
    draws = random.Random(BACKOFF_SEED)
    delays = [draws.uniform(0, 0.5 * 2**n) for n in range(RETRIES)]
    # The connection after the last retry rejects too but stays open: nothing to retry, so the count is final.
    scripts = [reject_and_close] * RETRIES + [sends(kraken_rejection("BTC/USD"), then=heartbeats)]
    with ScriptedVenue(*scripts) as venue, ingesting(kraken(), venue.url) as run:
        wait_until(
            lambda: run.metric("subscription_rejections_total", exchange="kraken") == RETRIES + 1,
            "every connection's rejection",
            timeout=sum(delays) + 15,
        )
        assert len(venue.seen) == RETRIES + 1 and venue.seen[-1].closed is None
    opened = [seen.opened for seen in venue.seen]
    waited = [later - earlier for earlier, later in itertools.pairwise(opened)]
    assert all(gap >= delay for gap, delay in zip(waited, delays, strict=True)), (waited, delays)


def test_malformed_binary_and_oversized_frames_are_reported_and_the_connection_goes_on() -> None:
    async def bad_frames(ws: ServerConnection, seen: Seen) -> None:
        await ws.send(binance_trade(1))
        await ws.send("this is not json{")
        await ws.send('{"stream":"btcusdt@trade","data":{"e":"trade","E":172')  # cut short
        send_raw(ws, Opcode.TEXT, b"\xff\xfe not UTF-8")
        await ws.send(b"\x00\x01\x02 binary")
        await ws.send('{"stream":"btcusdt@trade","data":"' + "x" * 1_100_000 + '"}')
        await ws.send(binance_trade(2))
        await hold(ws, seen)

    with ScriptedVenue(bad_frames) as venue, ingesting(binance(), venue.url) as run:
        wait_until(lambda: run.sent.binance_ids() == [1, 2], "the trade after the bad frames")
        errors = {
            reason: run.metric("error_frames_total", exchange="binance", reason=reason)
            for reason in ("malformed", "binary", "oversized")
        }
        assert errors == {"malformed": 3, "binary": 1, "oversized": 1}
        assert len(venue.seen) == 1
        assert run.metric("reconnects_total", exchange="binance") == 0


def test_a_frame_over_the_limit_is_refused_from_its_header_before_its_payload_comes() -> None:
    frame = '{"stream":"btcusdt@trade","data":"' + "x" * 2_000_000 + '"}'
    wire = Frame(Opcode.TEXT, frame.encode()).serialize(mask=False)
    first = len(wire) // 20  # the header and 100 kB of the 2 MB payload
    refused = threading.Event()

    async def oversized(ws: ServerConnection, seen: Seen) -> None:
        await ws.send(binance_trade(1))
        ws.transport.write(wire[:first])
        await asyncio.to_thread(refused.wait, 30)
        ws.transport.write(wire[first:])
        await ws.send(binance_trade(2))
        await hold(ws, seen)

    with ScriptedVenue(oversized) as venue, ingesting(binance(), venue.url) as run:
        # Refused while 95 % of the frame is not even sent: the reader never held it whole.
        wait_until(lambda: run.metric("error_frames_total", exchange="binance", reason="oversized") == 1, "refusal")
        refused.set()
        wait_until(lambda: run.sent.binance_ids() == [1, 2], "the trade after the refused frame")
        assert run.metric("error_frames_total", exchange="binance", reason="oversized") == 1
        assert len(venue.seen) == 1
        assert run.metric("reconnects_total", exchange="binance") == 0


def test_a_message_over_the_limit_in_fragments_is_refused_and_the_connection_opened_anew() -> None:
    async def fragments(ws: ServerConnection, seen: Seen) -> None:
        trade = binance_trade(1)
        await ws.send([trade[:10], trade[10:20], trade[20:]])  # under the limit: whole, forwarded
        # 1.2 MB of a message that never ends; pings keep the connection from falling silent.
        send_raw(ws, Opcode.TEXT, b'{"stream":"btcusdt@trade","data":"' + b"x" * 600_000, fin=False)
        send_raw(ws, Opcode.CONT, b"x" * 600_000, fin=False)
        while True:
            await ws.ping()
            await asyncio.sleep(0.5)

    with ScriptedVenue(fragments, sends(binance_trade(2))) as venue, ingesting(binance(), venue.url) as run:
        wait_until(lambda: run.sent.binance_ids() == [1, 2], "the trade on the next connection")
        assert run.metric("error_frames_total", exchange="binance", reason="oversized") == 1
        assert len(venue.seen) == 2


def test_a_venue_error_frame_is_counted_not_forwarded() -> None:
    error = '{"error":{"code":2,"msg":"Invalid request: unknown variable"},"id":1}'
    with ScriptedVenue(sends(error, binance_trade(1))) as venue, ingesting(binance(), venue.url) as run:
        wait_until(lambda: run.sent.binance_ids() == [1], "the trade")
        assert run.metric("error_frames_total", exchange="binance", reason="venue_error") == 1


def test_binance_pings_are_answered_with_the_same_payload() -> None:
    answered: list[float] = []

    async def ping(ws: ServerConnection, seen: Seen) -> None:
        for n in range(3):
            # websockets resolves the waiter only on a pong carrying the ping's payload.
            waiter = await ws.ping(f"binance-{n}".encode())
            answered.append(await asyncio.wait_for(waiter, 5))
        await hold(ws, seen)

    with ScriptedVenue(ping) as venue, ingesting(binance(), venue.url):
        wait_until(lambda: len(answered) == 3, "three pongs")
        assert len(venue.seen) == 1


@pytest.mark.parametrize(
    ("exchange", "ping", "pong"),
    [
        (Bybit(["BTC-USDT"]), '{"op":"ping"}', '{"success":true,"ret_msg":"pong","conn_id":"x","op":"ping"}'),
        (Kraken(["BTC-USD"]), '{"method":"ping"}', '{"method":"pong","time_in":"x","time_out":"y"}'),
    ],
    ids=["bybit", "kraken"],
)
def test_application_pings_go_out_on_schedule_and_pongs_count_as_control_frames(
    exchange: Bybit | Kraken, ping: str, pong: str
) -> None:
    exchange.timing = Timing(silence=5.0, ping_every=0.3)

    with ScriptedVenue(answers(ping, pong)) as venue, ingesting(exchange, venue.url) as run:
        wait_until(lambda: venue.seen and venue.seen[0].messages.count(ping) >= 4, "four pings")
        wait_until(lambda: run.metric("control_frames_total", exchange=exchange.name) >= 3, "the pongs")
        assert run.metric("reconnects_total", exchange=exchange.name) == 0


def test_okx_pings_only_when_idle() -> None:
    exchange = Okx(["BTC-USDT"])
    exchange.timing = Timing(silence=5.0, ping_every=0.6, ping_when_idle=True)
    trade = okx_trade(1)
    pings_while_busy: list[int] = []

    async def busy_then_idle(ws: ServerConnection, seen: Seen) -> None:
        for _ in range(20):  # a frame every 0.1 s: never idle for 0.6 s
            await ws.send(trade)
            await asyncio.sleep(0.1)
        pings_while_busy.append(seen.messages.count("ping"))
        await answers("ping", "pong")(ws, seen)

    with ScriptedVenue(busy_then_idle) as venue, ingesting(exchange, venue.url):
        wait_until(lambda: venue.seen and venue.seen[0].messages.count("ping") >= 3, "pings once idle")
        assert pings_while_busy == [0]
