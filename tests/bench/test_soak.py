"""The soak's pure parts: early and late medians, layers' batch counts, heap figures from jcmd, sizes by prefix."""

from __future__ import annotations

from typing import Any

import pytest

from bench.batchlog import Batch
from bench.soak import Soak, compare, heap_used_bytes, layer_batches, list_objects, prefix_sizes

G1 = """\
12345:
 garbage-first heap   total 1048576K, used 123456K [0x00000000c0000000, 0x0000000100000000)
  region size 1024K, 2 young (2048K), 0 survivors (0K)
 Metaspace       used 101234K, committed 102400K, reserved 1163264K
  class space    used 12345K, committed 13000K, reserved 1048576K
"""
SERIAL = """\
678:
 def new generation   total 9792K, used 1510K [0x00000000f0000000, 0x00000000f0aa0000, 0x00000000f5550000)
  eden space 8704K,  17% used [0x00000000f0000000, 0x00000000f0179a18, 0x00000000f0880000)
  from space 1088K,   0% used [0x00000000f0880000, 0x00000000f0880000, 0x00000000f0990000)
  to   space 1088K,   0% used [0x00000000f0990000, 0x00000000f0990000, 0x00000000f0aa0000)
 tenured generation   total 21888K, used 2M [0x00000000f5550000, 0x00000000f6ab0000, 0x0000000100000000)
   the space 21888K,  24% used [0x00000000f5550000, 0x00000000f5aa1498, 0x00000000f5aa1600, 0x00000000f6ab0000)
 Metaspace       used 6500K, committed 6656K, reserved 1056768K
"""


def test_heap_is_the_generations_in_use_without_metaspace() -> None:
    assert heap_used_bytes(G1) == 123_456 * 1024
    assert heap_used_bytes(SERIAL) == 1510 * 1024 + 2 * 1024 * 1024  # young and old, "17% used" is no figure
    with pytest.raises(ValueError, match="no heap figure"):
        heap_used_bytes("678:\nAttachNotSupportedException: Unable to open socket file\n")


def test_long_runs_compare_the_first_thousand_after_warm_up_with_the_last_thousand() -> None:
    durations = [9.0] * 100 + [1.0] * 1_000 + [5.0] * 900 + [1.2] * 1_000
    got = compare(durations)
    assert (got["batches"], got["first_median_s"], got["last_median_s"], got["ratio"]) == (3_000, 1.0, 1.2, 1.2)
    assert got["window"].startswith("first 1,000 batches after the first 100")


def test_short_runs_compare_tenths_and_say_so() -> None:
    durations = [9.0] * 50 + [2.0] * 50 + [7.0] * 350 + [3.0] * 50
    got = compare(durations)
    assert (got["first_median_s"], got["last_median_s"], got["ratio"]) == (2.0, 3.0, 1.5)
    assert got["window"].startswith("short run") and "(50)" in got["window"]
    assert compare([1.0] * 9) == {"batches": 9, "window": got["window"].replace("(50)", "(0)"),
                                  "first_median_s": None, "last_median_s": None, "ratio": None}  # fmt: skip


def test_a_layer_counts_its_querys_batches_only() -> None:
    got = layer_batches({"bronze": 5, "silver": 4, "gold": 7, "gold_1m": 9})  # a query of the file-sink code
    assert got == {"bronze": 5, "silver": 4, "gold": 7}
    assert layer_batches({"bronze": 2}) == {"bronze": 2, "silver": 0, "gold": 0}


class FakeS3:
    """Serves ``pages`` as an S3 client's list_objects_v2 paginator does, for one bucket."""

    def __init__(self, bucket: str, pages: list[list[tuple[str, int]]]) -> None:
        self.bucket = bucket
        self.pages = pages

    def get_paginator(self, operation: str) -> FakeS3:
        assert operation == "list_objects_v2"
        return self

    def paginate(self, Bucket: str) -> list[dict[str, Any]]:  # noqa: N803 - boto3's spelling
        assert Bucket == self.bucket
        return [{"Contents": [{"Key": k, "Size": s} for k, s in page]} if page else {} for page in self.pages]


def test_sizes_add_up_by_table_log_and_checkpoint_prefix() -> None:
    client = FakeS3("lake", [
        [("bronze/trades/date=2026-12-07/part-0.parquet", 1_000), ("bronze/trades/_spark_metadata/0", 50)],
        [],  # an empty page: no Contents key at all
        [("bronze/trades/_spark_metadata/9.compact", 500), ("gold/bars_1m/symbol=BTC/part-1.parquet", 300),
         ("gold/bars_1m_all_venues/_delta_log/00000000000000000000.json", 70),
         ("silver/trades_old/part-2.parquet", 9_999),  # beside silver/trades, not in it
         ("_checkpoints/gold_1m/offsets/0", 20), ("_checkpoints/gold_1m/state/0/1/1.delta", 200),
         ("_checkpoints/gold_1m_all_venues/commits/0", 30)],
    ])  # fmt: skip
    objects = list_objects(client, "lake")
    assert len(objects) == 9
    got = prefix_sizes(objects, ["bronze/trades", "silver/trades", "gold/bars_1m", "gold/bars_1m_all_venues"],
                       ["gold_1m", "gold_1m_all_venues", "bronze"])  # fmt: skip
    assert got["tables"] == {
        "bronze/trades": {"objects": 3, "bytes": 1_550, "log_objects": 2, "log_bytes": 550},
        "silver/trades": {"objects": 0, "bytes": 0, "log_objects": 0, "log_bytes": 0},
        "gold/bars_1m": {"objects": 1, "bytes": 300, "log_objects": 0, "log_bytes": 0},
        "gold/bars_1m_all_venues": {"objects": 1, "bytes": 70, "log_objects": 1, "log_bytes": 70},
    }
    assert got["checkpoints"] == {"gold_1m": {"objects": 2, "bytes": 220},
                                  "gold_1m_all_venues": {"objects": 1, "bytes": 30},
                                  "bronze": {"objects": 0, "bytes": 0}}  # fmt: skip


def _batch(query: str, batch: int, seconds: float) -> Batch:
    return Batch(query, batch, 10, seconds, 1_000.0 + batch)


def test_a_batch_run_again_counts_once_with_its_last_duration_and_gaps_are_null() -> None:
    soak = Soak()
    soak.add([_batch("bronze", 0, 2.0), _batch("bronze", 1, 1.0), _batch("gold", 0, 3.0)])
    soak.add([_batch("bronze", 1, 1.5), _batch("bronze", 3, 0.25)])  # batch 1 again after a restart; 2 not logged
    assert soak.counts() == {"bronze": 3, "gold": 1}
    assert soak.ordered("bronze") == [2.0, 1.5, 0.25]
    report = soak.report()
    assert report["duration_ms"] == {"bronze": [2_000, 1_500, None, 250], "gold": [3_000]}
    assert report["layer_batches"] == {"bronze": 3, "silver": 0, "gold": 1}
    assert report["summary"]["final_objects"] is None and report["summary"]["heap_after_gc_mib"] is None
