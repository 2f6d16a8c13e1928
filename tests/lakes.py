"""Gold tables written with delta-rs as the gold job lays them out (partitioned by ``date``, ``symbol``), for the
readers' tests: in a local folder standing in for the bucket, or in MinIO."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest
from deltalake import write_deltalake
from pyarrow import fs

from core.settings import Settings
from cryptolake import lake

PRICE = pa.decimal128(18, 10)
VOLUME = pa.decimal128(38, 8)
GOLD_SCHEMA = pa.schema(
    [
        ("bar_start", pa.timestamp("us", "UTC")),
        ("bar_end", pa.timestamp("us", "UTC")),
        ("exchange", pa.string()),
        ("symbol", pa.string()),
        *((name, PRICE) for name in ("open", "high", "low", "close")),
        ("volume", VOLUME),
        ("quote_volume", pa.decimal128(38, 18)),
        ("vwap", pa.float64()),
        ("trades", pa.int64()),
        ("buy_volume", VOLUME),
        ("sell_volume", VOLUME),
        ("first_trade_id", pa.string()),
        ("last_trade_id", pa.string()),
        ("complete", pa.bool_()),
        ("date", pa.date32()),
    ]
)


def bar(exchange: str, symbol: str, start: datetime, close: str = "100", *, complete: bool = True) -> dict[str, Any]:
    """A 1m bar of one trade at ``close``."""
    price = Decimal(close)
    return {
        "bar_start": start,
        "bar_end": start + timedelta(minutes=1),
        "exchange": exchange,
        "symbol": symbol,
        **dict.fromkeys(("open", "high", "low", "close"), price),
        "volume": Decimal(1),
        "quote_volume": price,
        "vwap": float(price),
        "trades": 1,
        "buy_volume": Decimal(1),
        "sell_volume": Decimal(0),
        "first_trade_id": "1",
        "last_trade_id": "1",
        "complete": complete,
        "date": start.astimezone(UTC).date(),
    }


def write_gold(
    settings: Settings, bars: list[dict[str, Any]], table: str = "gold/bars_1m", mode: str = "append"
) -> None:
    write_deltalake(
        lake.table_uri(settings, table),
        pa.Table.from_pylist(bars, GOLD_SCHEMA),
        partition_by=["date", "symbol"],
        mode=mode,  # type: ignore[arg-type]
        storage_options=lake.storage_options(settings),
    )


@pytest.fixture
def local_lake(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Settings:
    """Settings whose lake is the folder ``tmp_path/<bucket>``: delta-rs reads a local table as it reads one in S3."""
    monkeypatch.setattr(lake, "table_uri", lambda settings, table: str(tmp_path / settings.lake_bucket / table))
    monkeypatch.setattr(lake, "filesystem", lambda _settings: fs.SubTreeFileSystem(str(tmp_path), fs.LocalFileSystem()))
    return Settings()
