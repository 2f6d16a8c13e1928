"""What the end-to-end tests share: waiting on a running pipeline, and gold compared with the reference's bars."""

from __future__ import annotations

import dataclasses
import math
import os
import subprocess
import sys
import time
import uuid
from collections import defaultdict
from collections.abc import Callable, Iterable, Sequence
from datetime import UTC, datetime
from typing import Any

import pytest

from core.layers import GOLD_OUTPUTS
from core.settings import Settings
from cryptolake import lake
from cryptolake.local.kafka import ensure_topic
from cryptolake.local.minio import ensure_bucket
from cryptolake.local.paths import REPO_ROOT
from cryptolake.runner import Pipeline
from tests import reference

DEADLINE_S = 480
MINUTES = {"1m": 1, "5m": 5, "1h": 60}
ALL_VENUES = "*"  # the reference's exchange for trades pooled across venues
# What a bar of the all-venue table names instead of its trade ids: the venues that traded in it.
PER_VENUE_ONLY = ("first_trade_id", "last_trade_id")


def private_stack(services: Settings, name: str, partitions: int, **changes: Any) -> Settings:
    """Settings of a topic and a bucket of their own on the session's services, both created, with 2 s triggers."""
    run = f"{name}-{uuid.uuid4().hex[:8]}"
    # Made with the services' own state folder, whose MinIO root password it holds, whatever ``changes`` say.
    own = services.with_(kafka_topic=run, lake_bucket=run)
    ensure_topic(own, partitions=partitions)
    ensure_bucket(own)
    return own.with_(trigger_interval="2 seconds", **changes)


def cli(settings: Settings, *args: str) -> str:
    """What ``cryptolake ARGS`` prints, run as a user would, against the stack of ``settings``."""
    done = subprocess.run(
        [sys.executable, "-m", "cryptolake.cli", *args],
        env={**os.environ, **settings.to_env()},
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    return done.stdout


def wait_for(
    running: Pipeline,
    done: Callable[[], bool],
    what: str,
    deadline_s: float = DEADLINE_S,
    *,
    state: Callable[[], object] = lambda: "",
    interval: float = 3.0,
) -> None:
    """Poll ``done`` every ``interval`` seconds while the pipeline runs, restarting layers that fail as the operator
    would; a timeout says what ``state`` last gave (where the wait stood)."""
    deadline = time.monotonic() + deadline_s
    while time.monotonic() < deadline:
        running.restart_failed()
        if done():
            return
        time.sleep(interval)
    pytest.fail(f"{what} not reached within {deadline_s:.0f}s ({state()}); logs in {running.paths.logs}")


def us(moment: datetime) -> int:
    moment = moment.replace(tzinfo=moment.tzinfo or UTC)
    return int(moment.timestamp()) * 1_000_000 + moment.microsecond


def bar_key(bar: dict[str, Any]) -> tuple[str, str, int]:
    return bar.get("exchange", ALL_VENUES), bar["symbol"], us(bar["bar_start"])


def mismatch(
    gold: Sequence[dict[str, Any]],
    trades: Iterable[reference.Trade],
    watermark_s: int,
    interval: str = "1m",
    across_venues: bool = False,
) -> str | None:
    """What keeps ``gold``, the bars of one table, from being exactly the reference's bars of ``trades``, or None:
    every bar once, every field equal (vwap within 1e-9), its end its start plus the interval, its date its start's, its
    venues (across venues) those that traded in it, and ``complete`` exactly where the latest trade's time less
    ``watermark_s`` has passed its end."""
    minutes, trades = MINUTES[interval], list(trades)
    width_us = minutes * 60_000_000
    counted = [dataclasses.replace(t, exchange=ALL_VENUES) for t in trades] if across_venues else trades
    expected = reference.bars(counted, minutes)
    watermark_us = max(t.time_us for t in trades) - watermark_s * 1_000_000
    venues: dict[tuple[str, str, int], set[str]] = defaultdict(set)
    for t in trades:
        venues[ALL_VENUES, t.symbol, t.time_us // width_us * width_us].add(t.exchange)
    table = f"{interval} bars" + (" across venues" if across_venues else "")
    got = {bar_key(b): b for b in gold}
    if set(got) != set(expected):
        missing, extra = sorted(set(expected) - set(got)), sorted(set(got) - set(expected))
        return f"{table}: {len(missing)} bars missing {missing[:3]}, {len(extra)} not the reference's {extra[:3]}"
    if len(gold) != len(got):
        return f"{table}: {len(gold) - len(got)} bars twice"
    for key in sorted(expected):
        bar, start = got[key], key[2]
        want = {
            name: value
            for name, value in dataclasses.asdict(expected[key]).items()
            if name != "vwap" and not (across_venues and name in PER_VENUE_ONLY)
        }
        want |= {
            "bar_end": start + width_us,
            "date": datetime.fromtimestamp(start // 1_000_000, UTC).date(),
            "complete": start + width_us <= watermark_us,
            **({"exchanges": sorted(venues[key])} if across_venues else {}),
        }
        have = {name: bar[name] for name in want} | {"bar_end": us(bar["bar_end"])}
        wrong = {name: (have[name], value) for name, value in want.items() if have[name] != value}
        if not math.isclose(bar["vwap"], expected[key].vwap, rel_tol=1e-9):
            wrong["vwap"] = (bar["vwap"], expected[key].vwap)
        if wrong:
            return f"{table} {key}: (gold, reference) differ in {wrong}"
    return None


def gold_mismatch(settings: Settings, trades: Iterable[reference.Trade], watermark_s: int) -> str | None:
    """What keeps any gold table from holding exactly the reference's bars of ``trades`` (see ``mismatch``), or None."""
    trades = list(trades)
    for interval, across_venues in GOLD_OUTPUTS:
        try:
            gold = lake.read_bars(settings, interval=interval, across_venues=across_venues).to_pylist()
        except lake.READ_ERRORS as exc:  # the store restarting: read again
            return f"{interval} bars unreadable: {exc}"
        found = mismatch(gold, trades, watermark_s, interval, across_venues)
        if found is not None:
            return found
    return None


def wait_for_gold(running: Pipeline, trades: Iterable[reference.Trade], watermark_s: int, what: str) -> None:
    """Wait until every gold table holds exactly the reference's bars of ``trades`` (see ``mismatch``); failing, say
    what differed last."""
    trades, last = list(trades), {"mismatch": "gold not read yet"}

    def equal() -> bool:
        last["mismatch"] = gold_mismatch(running.settings, trades, watermark_s) or ""
        return not last["mismatch"]

    wait_for(running, equal, what, state=lambda: last["mismatch"])
