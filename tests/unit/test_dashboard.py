"""The dashboard's data, its server and the self-contained file of `cryptolake chart`, without a lake."""

from __future__ import annotations

import json
import re
import socket
import urllib.error
import urllib.request
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from core import events
from core.layers import QUARANTINE_TABLE
from core.settings import Settings
from cryptolake import cli
from cryptolake.dashboard import bars, server
from cryptolake.dashboard.page import STATIC, self_contained
from cryptolake.dashboard.view import LakeView, health
from cryptolake.status import Progress
from tests.lakes import bar as lake_bar
from tests.lakes import write_gold


def _bar(exchange: str, minute: int, close: str, symbol: str = "BTC-USDT") -> dict[str, Any]:
    return {"exchange": exchange, "symbol": symbol, "bar_start": datetime(2026, 1, 1, 0, minute),
            "open": Decimal("100.5000000000"), "high": Decimal("101.2500000000"), "low": Decimal("99.0000000000"),
            "close": Decimal(close), "volume": Decimal("0.5"), "vwap": 100.25, "trades": 3}  # fmt: skip


def test_series_per_venue_and_symbol_in_utc_seconds_with_the_symbols_precision() -> None:
    rows = [_bar("kraken", 0, "100.1"), _bar("binance", 0, "100.125"), _bar("binance", 1, "100.2"),
            _bar("binance", 0, "0.07", symbol="DOGE-USDT")]  # fmt: skip
    got = bars.series(rows)
    assert [(s["symbol"], s["exchange"], len(s["bars"])) for s in got] == [
        ("BTC-USDT", "binance", 2),
        ("BTC-USDT", "kraken", 1),
        ("DOGE-USDT", "binance", 1),
    ]
    assert got[0]["bars"][0] == {
        "time": 1767225600,  # 2026-01-01T00:00Z: the lake's naive times are UTC, whatever the machine's zone
        **{"open": 100.5, "high": 101.25, "low": 99.0, "close": 100.125, "volume": 0.5, "vwap": 100.25, "trades": 3},
    }
    assert got[0]["decimals"] == 3 and got[2]["decimals"] == 2


def test_the_spread_is_the_highest_close_less_the_lowest_where_venues_share_a_bar() -> None:
    candles = bars.series(
        [_bar("binance", 0, "100"), _bar("kraken", 0, "100.5"), _bar("coinbase", 0, "99.75"), _bar("binance", 1, "1")]
    )
    assert bars.spreads(candles) == [
        {"symbol": "BTC-USDT", "points": [{"time": 1767225600, "value": 0.75, "high": "kraken", "low": "coinbase"}]}
    ]
    assert bars.spreads(bars.series([_bar("binance", 0, "100")])) == [], "one venue has no spread"


def _progress(*lines: dict[str, Any]) -> Progress:
    progress = Progress()
    for line in lines:
        progress.fold(json.dumps(line).encode())
    return progress


def test_health_per_layer_with_what_waits_and_how_fresh_silver_and_gold_are() -> None:
    progress = _progress(
        {"ts": "2026-01-01T00:00:00+00:00", "event": events.QUERY_STARTED, "query": "bronze"},
        {"ts": "2026-01-01T00:00:10+00:00", "event": events.BATCH, "query": "bronze", "output_rows": 300},
        {"ts": "2026-01-01T00:00:20+00:00", "event": events.BATCH, "query": "silver", "output_rows": 250},
        {"ts": "2026-01-01T00:00:25+00:00", "event": events.BATCH, "query": "silver", "output_rows": 0},
        {
            "ts": "2026-01-01T00:00:05+00:00",
            "event": events.WAITING_FOR_UPSTREAM,
            "table": "s3a://b/silver/trades",
        },
    )
    now = datetime.fromisoformat("2026-01-01T00:00:30+00:00").timestamp()
    got = health(progress, 1200, {"quarantined": 4}, now - 45, now)
    assert got["layers"] == [
        {"name": "bronze", "state": "running", "rows": 300, "per_s": 10.0},
        {"name": "silver", "state": "running", "rows": 250, "per_s": 4.2},
        {"name": "gold", "state": "waiting for silver/trades", "rows": 0, "per_s": 0.0},
    ]
    assert got["silver_wrote_s"] == 10, "the newest batch that wrote rows, not the empty one after it"
    assert got["gold_bar_closed_s"] == 45
    assert (got["frames"], got["quarantined"]) == (1200, 4)
    assert "late" not in got


def test_the_view_reads_the_newest_bars_and_counts_the_quarantine_from_the_log(local_lake: Settings) -> None:
    noon = datetime(2026, 11, 21, 12, tzinfo=UTC)
    write_gold(local_lake, [lake_bar("binance", "BTC-USDT", noon), lake_bar("okx", "BTC-USDT", noon)])
    write_gold(local_lake, [lake_bar("binance", "BTC-USDT", noon + timedelta(minutes=1), complete=False)])
    write_gold(local_lake, [lake_bar("binance", "BTC-USDT", noon)] * 3, QUARANTINE_TABLE)
    view = LakeView(local_lake)
    view.refresh(Progress(), None, noon.timestamp() + 150)

    assert view.error is None
    assert [(s["exchange"], len(s["bars"])) for s in view.bars["1m"]["series"]] == [("binance", 2), ("okx", 1)]
    assert view.bars["5m"]["series"] == []
    # The forming bar is drawn, but gold's freshness is its newest complete bar's: 12:01 closed 90 s before.
    assert (view.health["quarantined"], view.health["gold_bar_closed_s"]) == (3, 90)


def test_a_lake_that_cannot_be_read_is_an_error_in_the_health_not_a_crash() -> None:
    view = LakeView(Settings(s3_endpoint="http://127.0.0.1:9"))  # nothing listens on the discard port
    view.refresh(Progress(), None, 0.0)
    assert view.error is not None and "http://127.0.0.1:9" in view.error
    assert view.health["error"] == view.error
    assert view.bars["1m"]["series"] == []


def test_the_chart_file_inlines_scripts_style_and_data_and_fetches_nothing() -> None:
    candles = bars.series([_bar("binance", 0, "100"), _bar("kraken", 0, "100.5")])
    html = self_contained({"interval": "1m", "series": candles, "spreads": bars.spreads(candles)}, "BTC </script>")
    assert not re.search(r"<script src=|<link ", html)
    assert "TradingView Lightweight Charts" in html and (STATIC / "dashboard.js").read_text() in html
    data = html.split("window.CRYPTOLAKE_DATA = ", 1)[1].split(";</script>", 1)[0]
    assert json.loads(data)["series"] == candles
    assert "BTC </script>" not in html, "a title cannot end the script early"


def test_the_server_serves_the_page_its_files_and_the_json() -> None:
    view = LakeView(Settings())
    view.bars["5m"] = {"interval": "5m", "series": [{"symbol": "X"}], "spreads": []}
    view.health = {"layers": []}
    web = server.serve(view, 0)

    def get(path: str) -> tuple[int, str, bytes]:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{web.server_address[1]}/{path}", timeout=5) as response:
                return response.status, response.headers["Content-Type"], response.read()
        except urllib.error.HTTPError as exc:
            return exc.code, exc.headers["Content-Type"], exc.read()

    try:
        status, kind, body = get("")
        assert (status, kind) == (200, "text/html; charset=utf-8") and b'src="static/dashboard.js"' in body
        assert get("static/lightweight-charts.standalone.production.js")[:2] == (200, "text/javascript")
        assert json.loads(get("api/bars?interval=5m")[2])["series"] == [{"symbol": "X"}]
        assert get("api/bars?interval=2m")[0] == 400
        assert json.loads(get("api/health")[2]) == {"layers": []}
        for outside in ("static/../page.py", "static/../../cli.js", "static/VENDORED.md", "nothing"):
            assert get(outside)[0] == 404, outside
    finally:
        web.shutdown()


def test_the_dashboard_command_says_when_the_lake_cannot_be_read(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    monkeypatch.setenv("CRYPTOLAKE_S3_ENDPOINT", "http://127.0.0.1:9")
    monkeypatch.setenv("CRYPTOLAKE_LOCAL_HOME", str(tmp_path))
    assert cli.main(["dashboard", "--port", "0"]) == 1
    assert "error: the lake at http://127.0.0.1:9 is not readable" in capsys.readouterr().err


def test_a_busy_port_gives_the_dashboard_a_free_one(capsys: pytest.CaptureFixture[str]) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        web = cli._serve_dashboard(LakeView(Settings()), taken.getsockname()[1])
        try:
            assert web.server_address[1] != taken.getsockname()[1]
            assert "is in use; the dashboard takes a free one" in capsys.readouterr().out
        finally:
            web.shutdown()
