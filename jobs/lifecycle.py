"""The tables' lifecycle, run by the driver that writes them: old days expired, replaced files vacuumed.

Delta on S3 has no lock service here, so a table has one writing driver; its maintenance runs there too, never from a
second driver (docs/lake.md, "Lifecycle"). Compaction needs no schedule: auto-compaction (``jobs/session.py``) runs
after the writes that leave a partition with many small files, in the writer's own thread.
"""

from __future__ import annotations

import logging
import threading
import time

from delta.tables import DeltaTable
from py4j.protocol import Py4JError
from pyspark.errors import PySparkException
from pyspark.sql import SparkSession
from pyspark.sql import functions as F

from core import events, logs
from core.layers import LAYERS
from core.settings import Settings, duration_seconds

log = logging.getLogger("jobs")


def retention_days(settings: Settings, table: str) -> int:
    """Days of ``table`` kept by its ``date`` partition, 0 for all: its layer's retention setting."""
    layer = next(name for name, layer in LAYERS.items() if table in layer.tables)
    days: int = getattr(settings, f"{layer}_retention_days")
    return days


def maintain(spark: SparkSession, uri: str, days: int, file_retention_hours: float) -> None:
    """One round on the table at ``uri``: delete its days older than ``days`` (0: none), then vacuum the files no
    version needs any more once they are ``file_retention_hours`` old."""
    delta = DeltaTable.forPath(spark, uri)
    if days:
        # Whole days only: the partition column alone decides, so whole files go and none is rewritten.
        delta.delete(F.col("date") < F.date_sub(F.current_date(), days))
    delta.vacuum(file_retention_hours)


class Maintenance(threading.Thread):
    """Runs ``maintain`` on each table every ``lake_maintenance_interval`` until ``stop``; a failed round is logged
    and tried again at the next one, never the end of the layer."""

    def __init__(self, spark: SparkSession, settings: Settings, tables: list[str], stop: threading.Event) -> None:
        super().__init__(name="maintenance", daemon=True)
        self.spark, self.settings, self.tables, self.stop = spark, settings, tables, stop
        self.interval = duration_seconds(settings.lake_maintenance_interval)
        self.file_retention_hours = duration_seconds(settings.lake_file_retention) / 3600

    def run(self) -> None:
        while self.tables and not self.stop.wait(self.interval):
            for table in self.tables:
                if self.stop.is_set():
                    return
                started, days = time.monotonic(), retention_days(self.settings, table)
                try:
                    maintain(self.spark, self.settings.table_uri(table), days, self.file_retention_hours)
                except (PySparkException, Py4JError) as exc:
                    log.warning(events.MAINTENANCE_FAILED, extra=logs.fields(table=table, error=str(exc)))
                    continue
                seconds = round(time.monotonic() - started, 1)
                log.info(events.MAINTENANCE, extra=logs.fields(table=table, retention_days=days, seconds=seconds))
