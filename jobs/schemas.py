"""Schemas of the lake's tables, shared by the jobs and their tests (each venue's frame schema is in core/venues/)."""

from pyspark.sql.types import (
    ArrayType,
    BinaryType,
    DateType,
    DecimalType,
    IntegerType,
    LongType,
    StringType,
    StructField,
    StructType,
    TimestampType,
)

# Bounds of what the lake keeps exactly (docs/lake.md, "Types and bounds"): prices below 10^8 with 10 decimals (a
# JPY-quoted BTC fits), sizes below 10^11 with 8 decimals (meme coins trade 10^10 units and more; venues give sizes to
# 8 decimals at most). 18 + 19 digits keep price * size exact within Spark's widest decimal, (38, 18).
PRICE = DecimalType(18, 10)
SIZE = DecimalType(19, 8)
QUOTE_AMOUNT = DecimalType(38, 18)
# A trade worth this much quote currency or more is an error (of a venue or a parser), not a trade; the bound keeps a
# bar's sum of quote amounts, whatever the number of trades, far from overflowing its 20 integer digits.
MAX_QUOTE_AMOUNT = 10**12

BRONZE = StructType(
    [
        StructField("key", BinaryType()),
        StructField("value", BinaryType()),
        StructField("topic", StringType()),
        StructField("partition", IntegerType()),
        StructField("offset", LongType()),
        StructField("kafka_timestamp", TimestampType()),
        StructField(
            "headers",
            ArrayType(StructType([StructField("key", StringType()), StructField("value", BinaryType())])),
        ),
        StructField("date", DateType()),
    ]
)


SILVER = StructType(
    [
        StructField("exchange", StringType()),
        StructField("symbol", StringType()),
        StructField("base", StringType()),
        StructField("quote", StringType()),
        StructField("trade_id", StringType()),
        # The trade id as a number where the venue numbers its trades in order per symbol, else null: with the
        # Kafka lineage below, the venue's own order of its trades of one time (core/venues/spark.py).
        StructField("trade_number", LongType()),
        StructField("price", PRICE),
        StructField("size", SIZE),
        StructField("quote_amount", QUOTE_AMOUNT),
        StructField("side", StringType()),
        StructField("event_time", TimestampType()),
        StructField("ingest_time", TimestampType()),
        StructField("topic", StringType()),
        StructField("partition", IntegerType()),
        StructField("offset", LongType()),
        # Position of the trade in its frame, as the venue listed it.
        StructField("frame_index", IntegerType()),
        # Time of the silver micro-batch that wrote the trade.
        StructField("silver_time", TimestampType()),
        StructField("date", DateType()),
    ]
)
