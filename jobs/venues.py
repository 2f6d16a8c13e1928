"""Each frame's trades, read by its own venue's Spark parser (``frame_schema`` and ``spark_trades``, core/venues/).

Every parser gives the same array of trades (core/venues/spark.py): null for anything but a trade frame of that venue
(unparseable text, an ack, a heartbeat), an empty array for a trade frame that carries no trade.
"""

from __future__ import annotations

from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from core.venues import LAKE_VENUES


def with_trades(frames: DataFrame, exchange: str, frame: str) -> DataFrame:
    """``frames`` with a ``trades`` column: the trades of column ``frame``, by the parser of column ``exchange``.

    Each frame is parsed once, by its own venue's schema only.
    """
    parsed = {name: f"_{name}_frame" for name in LAKE_VENUES}
    return (
        frames
        # A column of its own for each venue's parse; only the row's venue fills it.
        .select(
            "*",
            *(
                F.when(F.col(exchange) == name, F.from_json(F.col(frame).cast("string"), venue.frame_schema)).alias(
                    column
                )
                for (name, venue), column in zip(LAKE_VENUES.items(), parsed.values(), strict=True)
            ),
        )
        .withColumn(
            "trades", F.coalesce(*(LAKE_VENUES[name].spark_trades(F.col(column)) for name, column in parsed.items()))
        )
        .drop(*parsed.values())
    )
