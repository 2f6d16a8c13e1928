"""``cryptolake record`` against the local venue: the recording holds what was sent and received, exactly."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from core.venues import Kraken
from cryptolake.cli import main
from cryptolake.venue import recordings
from cryptolake.venue.recordings import TimedFrame
from cryptolake.venue.server import FeedSequence, LocalVenue, VenueThread, route_path
from tests.ingestion.frames import kraken_session

SUBSCRIBE = '{"method":"subscribe","params":{"channel":"trade","symbol":["BTC/USD","ETH/USD"],"snapshot":true}}'


def test_record_writes_the_subscription_and_every_frame_in_the_replay_format(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    frames = kraken_session({"BTC/USD": 1000, "ETH/USD": 5000})
    sequence = FeedSequence(
        Kraken, iter([TimedFrame(0.0, "", f) for f in frames]), float("inf"), route_path(Kraken, ["BTC-USD"])
    )
    venue = VenueThread(LocalVenue([sequence]))
    port = venue.start()
    out = tmp_path / "kraken_v2.replay.jsonl"
    try:
        argv = ["record", "kraken", "BTC-USD", "ETH-USD", "--out", str(out), "--frames", str(len(frames))]
        code = main([*argv, "--url", f"ws://127.0.0.1:{port}/kraken", "--seconds", "30"])
    finally:
        venue.stop()
    assert code == 0
    assert f"wrote {len(frames)} received frames" in capsys.readouterr().out
    lines = [json.loads(line) for line in out.read_text().splitlines()]
    assert all(set(line) == {"dir", "t", "raw"} for line in lines)
    assert [line["raw"] for line in lines if line["dir"] == "send"] == [SUBSCRIBE]
    assert [line["raw"] for line in lines if line["dir"] == "recv"] == frames
    assert lines[0]["dir"] == "send"
    assert all(json.dumps(json.loads(line["raw"]), separators=(",", ":")) == line["raw"] for line in lines)
    loaded = recordings.load(out)
    assert (loaded.feed, loaded.symbols, loaded.trade_frames) == (Kraken, ["BTC-USD", "ETH-USD"], 22)
