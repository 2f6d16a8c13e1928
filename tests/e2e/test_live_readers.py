"""What a user reads a running pipeline with, on one pipeline: the dashboard in a real browser (headless Chromium,
driven by Playwright), the layers' Prometheus metrics, the notebook and the lake's tables; and what else could reach
it: nothing from beyond this machine.

The page must show candles for every symbol, then a newer candle once gold writes one; the screenshot it leaves is
the page as a user sees it. The layers' driver must serve its streaming metrics in Prometheus's text format, under
the names the chart's Grafana dashboard reads. Every process of local mode must listen on loopback only, and none may
have the S3 secret on its command line, where any user's `ps` reads it. The notebook must run headless to its end,
its last cell agreeing with gold on a bar it computes from silver's trades. The pipeline runs on `make demo`'s source,
several synthetic venues: silver and gold must hold each of them for every symbol, their closes apart.
"""

from __future__ import annotations

import contextlib
import ipaddress
import json
import re
import threading
import time
import urllib.request
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import nbformat
import psutil
import pyarrow.compute as pc
import pytest
from nbclient import NotebookClient
from playwright.sync_api import Page, sync_playwright
from prometheus_client.parser import text_string_to_metric_families

from core import events
from core.layers import SILVER_TABLE
from core.settings import Settings
from cryptolake import lake
from cryptolake.dashboard import server
from cryptolake.dashboard.view import LakeView
from cryptolake.local.browser import install_chromium
from cryptolake.local.paths import REPO_ROOT
from cryptolake.runner import ONE_JVM, Pipeline, Source
from cryptolake.venue.synthetic import DEMO_VENUES
from tests.e2e.helpers import DEADLINE_S, private_stack, wait_for
from tests.unit.test_notebook import NOTEBOOK

pytestmark = [pytest.mark.services, pytest.mark.e2e]

SYMBOLS = ("BTC-USDT", "ETH-USDT")
REFRESH_S = 1.0
# Ten times real time from three hours ago: a 1m bar closes every 6 s, so the page soon has new ones to show, and
# event times stay behind the clock for half an hour (silver quarantines trades stamped in the future).
SPEED, PAST_MS, RATE = "10", 3 * 3_600_000, 4.0
# Spark's first batches take minutes on a loaded machine.
FIRST_CANDLES_S = 2 * DEADLINE_S

# What the PrometheusServlet sink makes of bronze's "inputRate-total" gauge, under the jobs' metrics namespace.
BRONZE_INPUT_RATE = "metrics_cryptolake_driver_spark_streaming_bronze_inputRate_total_Value"
SYMBOLS_WITH_CANDLES = """() => new Set([...document.querySelectorAll("#candles .panel[data-candles]")]
    .filter((panel) => Number(panel.dataset.candles) > 0).map((panel) => panel.dataset.symbol)).size"""
NEWEST_CANDLES = """() => Object.fromEntries([...document.querySelectorAll("#candles .panel[data-last]")]
    .map((panel) => [`${panel.dataset.exchange} ${panel.dataset.symbol}`, Number(panel.dataset.last)]))"""
A_NEWER_CANDLE = """(before) => [...document.querySelectorAll("#candles .panel[data-last]")]
    .some((panel) => Number(panel.dataset.last) > (before[`${panel.dataset.exchange} ${panel.dataset.symbol}`] ?? 0))"""


@dataclass(frozen=True)
class Stack:
    pipeline: Pipeline
    dashboard: str  # its URL
    layers_log_start: int  # where this run's lines begin in the layers' log, shared with earlier tests
    started: float  # time.monotonic() at the pipeline's start


@pytest.fixture(scope="module")
def stack(services: Settings) -> Iterator[Stack]:
    """A pipeline of its own with its dashboard, refreshed as `cryptolake up` refreshes it."""
    settings = private_stack(services, "dashboard", 2, symbols=SYMBOLS, gold_watermark="2 seconds")
    start_ms = int(time.time() * 1000) - PAST_MS
    running = Pipeline(settings, Source(kind="synthetic", rate=RATE, speed=SPEED, start_ms=start_ms))
    view = LakeView(running.settings)
    stop = threading.Event()

    def refresh() -> None:
        while not stop.wait(REFRESH_S):
            running.poll_progress()
            view.refresh(running.progress, running.ingested_frames(), time.time())

    log = running.process(ONE_JVM).log
    start = log.stat().st_size if log.exists() else 0
    started = time.monotonic()
    running.start()
    web = server.serve(view, 0)
    refresher = threading.Thread(target=refresh, name="dashboard-refresh", daemon=True)
    refresher.start()
    try:
        yield Stack(running, server.url(web), start, started)
    finally:
        stop.set()
        refresher.join()
        web.shutdown()
        running.stop()


@pytest.fixture
def page() -> Iterator[Page]:
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(install_chromium()), headless=True)
        try:
            yield browser.new_page(viewport={"width": 1400, "height": 1000})
        finally:
            browser.close()


@pytest.mark.timeout(FIRST_CANDLES_S + DEADLINE_S + 300)
def test_the_page_shows_candles_for_every_symbol_and_then_newer_ones(stack: Stack, page: Page, tmp_path: Path) -> None:
    page.goto(stack.dashboard)
    page.wait_for_function(f"({SYMBOLS_WITH_CANDLES})() >= {len(SYMBOLS)}", timeout=FIRST_CANDLES_S * 1000)
    print(f"candles of every symbol on the page {time.monotonic() - stack.started:.0f} s after the start")
    before = page.evaluate(NEWEST_CANDLES)
    page.wait_for_function(A_NEWER_CANDLE, arg=before, timeout=DEADLINE_S * 1000)
    page.wait_for_function("() => document.querySelector('#layers tbody')?.textContent.includes('running')")
    assert page.locator("#candles .panel canvas").count() > 0, "lightweight-charts drew on its canvases"
    assert page.locator("#venues .panel").count() == len(SYMBOLS)
    screenshot = tmp_path / "dashboard.png"
    page.screenshot(path=screenshot, full_page=True)
    print(f"dashboard screenshot: {screenshot}")


def _metrics_url(stack: Stack) -> str | None:
    """The driver's /metrics/prometheus, from the line the layers log once their Spark UI is up."""
    with stack.pipeline.process(ONE_JVM).log.open("rb") as log:
        log.seek(stack.layers_log_start)
        lines = [json.loads(line) for line in log.read().splitlines() if line.startswith(b"{")]
    ui = next((line for line in lines if line.get("event") == events.SPARK_UI), None)
    # The port it names; its host is the machine's address, where 127.0.0.1 reaches the same server.
    return None if ui is None else f"http://127.0.0.1:{urlsplit(ui['url']).port}{ui['metrics']}"


def _served_names(url: str) -> set[str]:
    with urllib.request.urlopen(url, timeout=10) as response:  # noqa: S310 - the URL is built above, http only
        text = response.read().decode()
    return {sample.name for family in text_string_to_metric_families(text) for sample in family.samples}


def test_the_layers_serve_streaming_metrics_in_prometheus_text(stack: Stack) -> None:
    found: dict[str, set[str]] = {}

    def streaming_metrics() -> bool:
        url = _metrics_url(stack)
        if url is not None:
            found["names"] = _served_names(url)
        return BRONZE_INPUT_RATE in found.get("names", set())

    wait_for(stack.pipeline, streaming_metrics, "bronze's input rate at the driver's /metrics/prometheus")
    dashboard = json.loads((REPO_ROOT / "charts/cryptolake/files/grafana-dashboard.json").read_text())
    patterns = {
        match
        for panel in dashboard["panels"]
        for target in panel["targets"]
        for match in re.findall(r'__name__=~"(metrics_[^"]+)"', target["expr"])
    }
    assert len(patterns) == 5
    for pattern in patterns:
        assert any(re.fullmatch(pattern, name) for name in found["names"]), f"no served metric matches {pattern}"


def _complete_bars(stack: Stack) -> int:
    bars = lake.read_newest_bars(stack.pipeline.settings, count=1)
    return 0 if bars.num_rows == 0 else pc.sum(bars["complete"].cast("int64")).as_py()


@pytest.mark.timeout(DEADLINE_S + 600)
def test_the_notebook_runs_to_its_end_against_the_stack(stack: Stack, monkeypatch: pytest.MonkeyPatch) -> None:
    wait_for(stack.pipeline, lambda: _complete_bars(stack) > 0, "a complete 1m bar in gold")
    # The kernel reads the stack's settings from its environment, as the notebook tells a user to set them.
    for name, value in stack.pipeline.settings.to_env().items():
        monkeypatch.setenv(name, value)
    notebook = nbformat.read(NOTEBOOK, as_version=4)
    client = NotebookClient(
        notebook, timeout=300, kernel_name="python3", resources={"metadata": {"path": str(REPO_ROOT)}}
    )
    client.execute()

    last = "".join(output.get("text", "") for output in notebook.cells[-1].outputs)
    assert "trades agree" in last, last


def _venues(stack: Stack) -> dict[str, dict[str, set[str]]]:
    """Per table, the venues each symbol has rows of: silver's trades, gold's 1m bars, and the venues gold's bars
    across venues name; what cannot be read yet is left out."""
    settings = stack.pipeline.settings
    found: dict[str, dict[str, set[str]]] = defaultdict(lambda: defaultdict(set))
    with contextlib.suppress(*lake.READ_ERRORS):
        for row in lake.read_table(settings, SILVER_TABLE, columns=["exchange", "symbol"]).to_pylist():
            found["silver"][row["symbol"]].add(row["exchange"])
        for row in lake.read_bars(settings).to_pylist():
            found["gold 1m"][row["symbol"]].add(row["exchange"])
        for row in lake.read_bars(settings, across_venues=True).to_pylist():
            found["gold across venues"][row["symbol"]].update(row["exchanges"])
    return found


def _closes_apart(stack: Stack) -> set[str]:
    """The symbols with a 1m bar time at which the venues' closes differ: a spread, not one price."""
    closes: dict[tuple[str, Any], set[Any]] = defaultdict(set)
    with contextlib.suppress(*lake.READ_ERRORS):
        for bar in lake.read_bars(stack.pipeline.settings).to_pylist():
            closes[bar["symbol"], bar["bar_start"]].add(bar["close"])
    return {symbol for (symbol, _), seen in closes.items() if len(seen) > 1}


@pytest.mark.timeout(FIRST_CANDLES_S + 300)
def test_silver_and_gold_hold_every_synthetic_venue_of_every_symbol(stack: Stack) -> None:
    every = {table: {symbol: set(DEMO_VENUES) for symbol in SYMBOLS} for table in ("silver", "gold 1m")}
    every["gold across venues"] = every["gold 1m"]
    last: dict[str, object] = {}

    def all_venues_everywhere() -> bool:
        last["venues"] = _venues(stack)
        return last["venues"] == every

    what = "every venue of every symbol in silver and gold"
    wait_for(stack.pipeline, all_venues_everywhere, what, FIRST_CANDLES_S, state=lambda: last.get("venues"))
    wait_for(stack.pipeline, lambda: _closes_apart(stack) == set(SYMBOLS), "venues' closes apart for every symbol")


@dataclass(frozen=True)
class Seen:
    name: str
    cmdline: str
    listening: list[Any]  # psutil addresses: ip, port


def _local_processes(stack: Stack) -> list[Seen]:
    """Kafka, MinIO, the venue, the ingestor and the layers (by the PID files in the state folder), with children,
    as seen now. A short-lived child (a launcher script's) may be gone, or a zombie, by the time it is read: it holds
    no socket and is left out."""
    found = []
    for pidfile in stack.pipeline.paths.run.glob("*.pid"):
        with contextlib.suppress(psutil.Error, ValueError):
            parent = psutil.Process(int(pidfile.read_text()))
            for process in (parent, *parent.children(recursive=True)):
                with contextlib.suppress(psutil.NoSuchProcess):
                    listening = [c.laddr for c in process.net_connections("inet") if c.status == "LISTEN"]
                    found.append(Seen(process.name(), " ".join(process.cmdline()), listening))
    return found


def _on_loopback(ip: str) -> bool:
    address = ipaddress.ip_address(ip)
    mapped = address.ipv4_mapped if isinstance(address, ipaddress.IPv6Address) else None
    return (mapped or address).is_loopback


def test_local_mode_listens_on_loopback_and_puts_no_secret_on_a_command_line(stack: Stack) -> None:
    wait_for(stack.pipeline, lambda: _metrics_url(stack) is not None, "the layers' Spark UI")
    processes = _local_processes(stack)
    names = {p.name for p in processes}
    assert {"java", "minio"} <= names, f"Kafka, the layers and MinIO among {names}"
    secret = stack.pipeline.settings.s3_secret_key
    for process in processes:
        assert secret not in process.cmdline, f"the S3 secret on {process.name}'s command line"
    listening = [(p.name, address) for p in processes for address in p.listening]
    assert len(listening) >= 6, listening  # Kafka's two, MinIO's two, the ingestor's, the venue's, the Spark UI's
    beyond = [(name, address) for name, address in listening if not _on_loopback(address.ip)]
    assert not beyond, f"listening beyond this machine: {beyond}"
