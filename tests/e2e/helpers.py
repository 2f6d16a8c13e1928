"""What the end-to-end tests share: waiting on a running pipeline, and gold bars keyed as the reference keys them."""

from __future__ import annotations

import dataclasses
import os
import subprocess
import sys
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import pytest

from core.settings import Settings
from cryptolake.local.kafka import ensure_topic
from cryptolake.local.minio import ensure_bucket
from cryptolake.local.paths import REPO_ROOT
from cryptolake.runner import Pipeline
from tests.reference import Bar

DEADLINE_S = 480


def private_stack(services: Settings, name: str, partitions: int, **changes: Any) -> Settings:
    """Settings of a topic and a bucket of their own on the session's services, both created, with 2 s triggers."""
    run = f"{name}-{uuid.uuid4().hex[:8]}"
    settings = services.with_(kafka_topic=run, lake_bucket=run, trigger_interval="2 seconds", **changes)
    ensure_topic(settings, partitions=partitions)
    ensure_bucket(settings)
    return settings


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


def wait_for(running: Pipeline, done: Callable[[], bool], what: str, deadline_s: float = DEADLINE_S) -> None:
    """Poll ``done`` while the pipeline runs, restarting layers that fail as the operator would."""
    deadline = time.monotonic() + deadline_s
    while time.monotonic() < deadline:
        running.restart_failed()
        if done():
            return
        time.sleep(3)
    pytest.fail(f"{what} not reached within {deadline_s:.0f}s; logs in {running.paths.logs}")


def us(moment: datetime) -> int:
    moment = moment.replace(tzinfo=moment.tzinfo or UTC)
    return int(moment.timestamp()) * 1_000_000 + moment.microsecond


def bar_key(bar: dict[str, Any]) -> tuple[str, str, int]:
    return bar["exchange"], bar["symbol"], us(bar["bar_start"])


def final_bars(
    expected: dict[tuple[str, str, int], Bar], max_event_us: int, watermark_s: int, minutes: int = 1
) -> set[tuple[str, str, int]]:
    """The bars gold must have emitted: those the watermark (latest event time less the delay) has passed."""
    watermark_us = max_event_us - watermark_s * 1_000_000
    return {key for key in expected if key[2] + minutes * 60_000_000 <= watermark_us}


def final_rollup_bars(
    expected: dict[tuple[str, str, int], Bar], final_1m: set[tuple[str, str, int]], minutes: int
) -> set[tuple[str, str, int]]:
    """The bars of ``minutes`` gold must have emitted from its 1m bars (``final_1m``): those ending at or before the
    latest 1m bar's start, its rollups' watermark."""
    watermark_us = max(start for *_, start in final_1m)
    return {key for key in expected if key[2] + minutes * 60_000_000 <= watermark_us}


def assert_gold_equals(gold: list[dict[str, Any]], expected: dict[tuple[str, str, int], Bar], final: set[Any]) -> None:
    """Gold holds exactly the final bars, once each, every field equal to the reference (vwap within 1e-9)."""
    got = {bar_key(b): b for b in gold}
    assert set(got) == final, f"missing {sorted(final - set(got))[:5]}, not final {sorted(set(got) - final)[:5]}"
    assert len(gold) == len(got), "gold holds a bar twice"
    for key in sorted(final):
        bar, want = got[key], expected[key]
        exact = {f.name: getattr(want, f.name) for f in dataclasses.fields(want) if f.name != "vwap"}
        assert {name: bar[name] for name in exact} == exact, key
        assert bar["vwap"] == pytest.approx(want.vwap, rel=1e-9), key
