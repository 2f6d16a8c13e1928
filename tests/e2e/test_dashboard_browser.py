"""The dashboard in a real browser: headless Chromium, driven by Playwright, on a running pipeline.

The page must show candles for every symbol, then a newer candle once gold writes one; the screenshot it leaves is
the page as a user sees it.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Page, sync_playwright

from cryptolake.dashboard import server
from cryptolake.dashboard.view import LakeView
from cryptolake.local.browser import install_chromium
from cryptolake.runner import Pipeline, Source
from cryptolake.settings import Settings
from tests.e2e.helpers import DEADLINE_S, private_stack

pytestmark = [pytest.mark.services, pytest.mark.e2e]

SYMBOLS = ("BTC-USDT", "ETH-USDT")
REFRESH_S = 1.0
# Ten times real time from ten minutes ago: a 1m bar closes every few seconds, so the page has new ones to show.
SPEED, PAST_MS = "10", 600_000

SYMBOLS_WITH_CANDLES = """() => new Set([...document.querySelectorAll("#candles .panel[data-candles]")]
    .filter((panel) => Number(panel.dataset.candles) > 0).map((panel) => panel.dataset.symbol)).size"""
NEWEST_CANDLES = """() => Object.fromEntries([...document.querySelectorAll("#candles .panel[data-last]")]
    .map((panel) => [`${panel.dataset.exchange} ${panel.dataset.symbol}`, Number(panel.dataset.last)]))"""
A_NEWER_CANDLE = """(before) => [...document.querySelectorAll("#candles .panel[data-last]")]
    .some((panel) => Number(panel.dataset.last) > (before[`${panel.dataset.exchange} ${panel.dataset.symbol}`] ?? 0))"""


@pytest.fixture
def dashboard(services: Settings) -> Iterator[str]:
    """The URL of a dashboard on a pipeline of its own, refreshed as `cryptolake up` refreshes it."""
    settings = private_stack(services, "dashboard", 2, symbols=SYMBOLS, gold_watermark="2 seconds")
    start_ms = int(time.time() * 1000) - PAST_MS
    running = Pipeline(settings, Source(kind="synthetic", rate=20.0, speed=SPEED, start_ms=start_ms))
    view = LakeView(running.settings)
    stop = threading.Event()

    def refresh() -> None:
        while not stop.wait(REFRESH_S):
            running.restart_failed()
            running.poll_progress()
            view.refresh(running.progress, running.ingested_frames(), time.time())

    running.start()
    web = server.serve(view, 0)
    refresher = threading.Thread(target=refresh, name="dashboard-refresh", daemon=True)
    refresher.start()
    try:
        yield server.url(web)
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


def test_the_page_shows_candles_for_every_symbol_and_then_newer_ones(
    dashboard: str, page: Page, tmp_path: Path
) -> None:
    page.goto(dashboard)
    page.wait_for_function(f"({SYMBOLS_WITH_CANDLES})() >= {len(SYMBOLS)}", timeout=DEADLINE_S * 1000)
    before = page.evaluate(NEWEST_CANDLES)
    page.wait_for_function(A_NEWER_CANDLE, arg=before, timeout=DEADLINE_S * 1000)
    page.wait_for_function("() => document.querySelector('#layers tbody')?.textContent.includes('running')")
    assert page.locator("#candles .panel canvas").count() > 0, "lightweight-charts drew on its canvases"
    assert page.locator("#venues .panel").count() == len(SYMBOLS)
    screenshot = tmp_path / "dashboard.png"
    page.screenshot(path=screenshot, full_page=True)
    print(f"dashboard screenshot: {screenshot}")
