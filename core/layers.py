"""The lake's layout: each layer's tables and streaming queries, and which layers read which (no Spark needed)."""

from __future__ import annotations

from dataclasses import dataclass

BRONZE_TABLE = "bronze/trades"
SILVER_TABLE = "silver/trades"
QUARANTINE_TABLE = "silver/quarantine"
BAR_INTERVALS = {"1m": "1 minute", "5m": "5 minutes", "1h": "1 hour"}
ALL_VENUES = "all_venues"
# A file in a query's checkpoint folder that a checkpoint without batches starts from (`cryptolake resume`): kept in
# the checkpoint so that it goes wherever the checkpoint goes, and is gone with it.
RESUME_FILE = "resume.json"


def gold_table(interval: str, across_venues: bool = False) -> str:
    return f"gold/bars_{interval}" + (f"_{ALL_VENUES}" if across_venues else "")


GOLD_OUTPUTS = [(interval, False) for interval in BAR_INTERVALS] + [("1m", True)]


@dataclass(frozen=True)
class Layer:
    name: str
    tables: tuple[str, ...]
    queries: tuple[str, ...]  # each one's checkpoint is named after it
    downstream: tuple[str, ...]  # layers built from this one's tables


LAYERS = {
    layer.name: layer
    for layer in (
        Layer("bronze", (BRONZE_TABLE,), ("bronze",), ("silver", "gold")),
        # One query a layer: silver writes trades and quarantine from one parse, gold every table from one read.
        Layer("silver", (SILVER_TABLE, QUARANTINE_TABLE), ("silver",), ("gold",)),
        Layer("gold", tuple(gold_table(i, a) for i, a in GOLD_OUTPUTS), ("gold",), ()),
    )
}
