"""A loopback copy of Binance's trade archive (data.binance.vision's layout), holding days the tests make from a
recorded session: the recorded trades shifted by whole days, written as the archive writes them."""

from __future__ import annotations

import dataclasses
import hashlib
import threading
import zipfile
from collections import defaultdict
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, date, datetime
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from tests import reference
from tests.fixtures import received_frames

RECORDING = "binance/spot_btcusdt_trade_combined_20240808.replay.jsonl"
SYMBOL = "BTC-USDT"
US_PER_DAY = 86_400_000_000
IDS_PER_DAY = 10_000_000
MICROSECONDS_FROM = date(2025, 1, 1)  # the archive's files give times in us from this day on, in ms before


def recorded_trades(count: int) -> list[reference.Trade]:
    """The first ``count`` trades of the recorded BTC-USDT session (2024-08-08, 23:54 UTC on)."""
    trades: list[reference.Trade] = []
    for raw in received_frames(RECORDING):
        trades += reference.trades_of("binance", raw, SYMBOL) or []
        if len(trades) >= count:
            return trades[:count]
    raise AssertionError(f"the recording has fewer than {count} trades")


def shifted(trades: list[reference.Trade], days: int) -> list[reference.Trade]:
    """``trades`` ``days`` later, their ids ``days`` * IDS_PER_DAY on: ids count up across days, and the same id on
    two days would be one trade twice."""
    out = []
    for t in trades:
        number = int(t.trade_id) + days * IDS_PER_DAY
        time_us = t.time_us + days * US_PER_DAY
        out.append(dataclasses.replace(t, trade_id=str(number), time_us=time_us, order=(t.exchange, number)))
    return out


def day_of(trade: reference.Trade) -> date:
    return datetime.fromtimestamp(trade.time_us // 1_000_000, UTC).date()


def csv_row(trade: reference.Trade) -> str:
    """id, price, quantity, quote quantity, time (ms before 2025, us after), buyer is maker, best match."""
    stamp = trade.time_us if day_of(trade) >= MICROSECONDS_FROM else trade.time_us // 1_000
    maker = "True" if trade.side == "sell" else "False"
    return f"{trade.trade_id},{trade.price},{trade.size},{trade.price * trade.size},{stamp},{maker},True\n"


class LoopbackArchive:
    """Files under ``root`` laid out as the archive's, served by :meth:`serving`."""

    def __init__(self, root: Path, symbol: str = SYMBOL) -> None:
        self.root, self.venue_symbol = root, symbol.replace("-", "")
        self.folder = root / "data" / "spot" / "daily" / "trades" / self.venue_symbol
        self.folder.mkdir(parents=True, exist_ok=True)

    def zip_path(self, day: date) -> Path:
        return self.folder / f"{self.venue_symbol}-trades-{day.isoformat()}.zip"

    def write_day(self, day: date, lines: list[str]) -> None:
        """``day``'s zip of ``lines`` and its checksum file."""
        path = self.zip_path(day)
        with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
            archive.writestr(path.with_suffix(".csv").name, "".join(lines))
        digest = hashlib.sha256(path.read_bytes()).hexdigest()
        Path(f"{path}.CHECKSUM").write_text(f"{digest}  {path.name}\n")

    def write(self, trades: list[reference.Trade]) -> list[date]:
        """A file per day of ``trades``; returns the days."""
        by_day: dict[date, list[str]] = defaultdict(list)
        for trade in trades:
            by_day[day_of(trade)].append(csv_row(trade))
        for day, lines in by_day.items():
            self.write_day(day, lines)
        return sorted(by_day)

    @contextmanager
    def serving(self) -> Iterator[str]:
        """Serve the files on loopback; yields the base URL."""

        class Quiet(SimpleHTTPRequestHandler):
            def log_message(self, format: str, *args: object) -> None:
                pass

        server = ThreadingHTTPServer(("127.0.0.1", 0), partial(Quiet, directory=str(self.root)))
        thread = threading.Thread(target=server.serve_forever, daemon=True)
        thread.start()
        try:
            yield f"http://127.0.0.1:{server.server_address[1]}"
        finally:
            server.shutdown()
            thread.join()
            server.server_close()
