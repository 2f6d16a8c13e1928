"""The lake reader trusts the file sink's log, not the folder listing."""

import json
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
from pyarrow import fs

from cryptolake.lake import committed_files


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
