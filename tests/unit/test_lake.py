"""The lake reader trusts the file sink's log, not the folder listing."""

import json
from datetime import UTC, datetime
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
from pyarrow import fs

from core.settings import Settings
from cryptolake.lake import committed_files, read_late_trades


def _write_log(directory: Path, name: str, entries: list[tuple[str, str]]) -> None:
    lines = ["v1"] + [
        json.dumps({"path": f"s3a://{path}", "size": 1, "isDir": False, "modificationTime": 0,
                    "blockReplication": 1, "blockSize": 1, "action": action})
        for path, action in entries
    ]  # fmt: skip
    (directory / name).write_text("\n".join(lines))


def test_reads_the_newest_compact_file_and_the_batches_after_it(tmp_path: Path) -> None:
    bucket = tmp_path / "bucket"
    table = bucket / "gold" / "bars_1m"
    log = table / "_spark_metadata"
    log.mkdir(parents=True)
    prefix = f"{bucket}/gold/bars_1m/date=2024-08-08/symbol=BTC-USDT"
    _write_log(log, "0", [(f"{prefix}/stale.parquet", "add")])  # superseded by 9.compact
    _write_log(log, "9.compact", [(f"{prefix}/a.parquet", "add"), (f"{prefix}/b.parquet", "add")])
    _write_log(log, "10", [(f"{prefix}/c%20d.parquet", "add"), (f"{prefix}/b.parquet", "delete")])
    (log / ".10.crc").write_text("checksum files are not batches")
    for name in ("a.parquet", "b.parquet", "c d.parquet", "uncommitted.parquet"):
        path = Path(prefix) / name
        path.parent.mkdir(parents=True, exist_ok=True)
        pq.write_table(pa.table({"x": [1]}), path)

    files = committed_files(fs.LocalFileSystem(), str(bucket), "gold/bars_1m")

    assert sorted(Path(f.path).name for f in files) == ["a.parquet", "c d.parquet"]
    assert all(f.partition == {"date": "2024-08-08", "symbol": "BTC-USDT"} for f in files)


def test_a_table_without_a_log_has_no_files(tmp_path: Path) -> None:
    assert committed_files(fs.LocalFileSystem(), str(tmp_path), "silver/trades") == []


def _committed_table(bucket: Path, table: str, partition: str, rows: pa.Table) -> None:
    folder = bucket / table / partition
    folder.mkdir(parents=True)
    pq.write_table(rows, folder / "part-0.parquet")
    log = bucket / table / "_spark_metadata"
    log.mkdir()
    _write_log(log, "0", [(f"{bucket.name}/{table}/{partition}/part-0.parquet", "add")])


def test_late_trades_are_those_silver_wrote_after_their_bar_or_of_a_bar_gold_passed(tmp_path: Path) -> None:
    bucket = tmp_path / "lake"
    t = [datetime(2024, 8, 8, 12, minute, second) for minute, second in ((0, 5), (0, 30), (0, 50), (1, 10), (3, 0))]
    written = [datetime(2024, 8, 8, 12, 1, s) for s in (3, 3, 9, 15, 15)]  # silver's batch times
    _committed_table(bucket, "silver/trades", "date=2024-08-08", pa.table({
        "exchange": ["binance"] * 5, "symbol": ["BTC-USDT"] * 5, "trade_id": ["1", "2", "3", "4", "5"],
        "event_time": pa.array(t, pa.timestamp("us")), "silver_time": pa.array(written, pa.timestamp("us")),
    }))  # fmt: skip
    # Gold emitted 12:00 counting trades 1 and 2, passed 12:01 (trade 4 came after its watermark) and emitted 12:02;
    # its committed watermark leaves 12:03 open.
    checkpoint = bucket / "_checkpoints" / "gold_1m"
    for folder in ("commits", "offsets"):
        (checkpoint / folder).mkdir(parents=True)
    (checkpoint / "commits" / "7").write_text('v1\n{"nextBatchWatermarkMs":0}')
    watermark_ms = int(datetime(2024, 8, 8, 12, 3, 5, tzinfo=UTC).timestamp() * 1000)
    (checkpoint / "offsets" / "7").write_text(f'v1\n{{"batchWatermarkMs":{watermark_ms},"batchTimestampMs":0}}\n{{}}')
    bar_starts = [datetime(2024, 8, 8, 12, 0), datetime(2024, 8, 8, 12, 2)]
    _committed_table(bucket, "gold/bars_1m", "date=2024-08-08/symbol=BTC-USDT", pa.table({
        "bar_start": pa.array(bar_starts, pa.timestamp("us")), "exchange": ["binance"] * 2,
        "last_silver_time": pa.array([written[1], written[3]], pa.timestamp("us")),
    }))  # fmt: skip
    late = read_late_trades(
        Settings(lake_bucket=bucket.name), "1m", s3=fs.SubTreeFileSystem(str(tmp_path), fs.LocalFileSystem())
    )

    assert late.column("trade_id").to_pylist() == ["3", "4"]
    assert late.column("bar_start").to_pylist() == [datetime(2024, 8, 8, 12, 0), datetime(2024, 8, 8, 12, 1)]
