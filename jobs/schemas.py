"""Schemas of the lake's tables and of the venues' frames, shared by the jobs and their tests."""

from pyspark.sql.types import (
    ArrayType,
    BinaryType,
    BooleanType,
    DataType,
    DateType,
    DecimalType,
    IntegerType,
    LongType,
    StringType,
    StructField,
    StructType,
    TimestampType,
)

# Up to 10 integer and 10 fractional digits: every listed crypto price and size fits, and price * size stays exact
# in Spark's widest decimal, (38, 17).
PRICE = DecimalType(20, 10)
SIZE = DecimalType(20, 10)

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


def _struct(**fields: DataType) -> StructType:
    return StructType([StructField(name, kind) for name, kind in fields.items()])


# Binance's trade fields by their wire names. "t" and "T" differ only in case, which Spark's field resolution does not
# tell apart, so the parser casts this struct, by position, to BINANCE_TRADE's readable names before using it.
BINANCE_TRADE_WIRE = _struct(
    e=StringType(), s=StringType(), t=LongType(), p=StringType(), q=StringType(), T=LongType(), m=BooleanType()
)
BINANCE_TRADE = _struct(
    event_type=StringType(),
    venue_symbol=StringType(),
    trade_id=LongType(),
    price=StringType(),
    quantity=StringType(),
    trade_time=LongType(),
    buyer_is_maker=BooleanType(),
)
BINANCE_TRADE_FRAME = _struct(stream=StringType(), data=BINANCE_TRADE_WIRE)

SILVER = StructType(
    [
        StructField("exchange", StringType()),
        StructField("symbol", StringType()),
        StructField("base", StringType()),
        StructField("quote", StringType()),
        StructField("trade_id", StringType()),
        StructField("price", PRICE),
        StructField("size", SIZE),
        StructField("quote_amount", DecimalType(38, 17)),
        StructField("side", StringType()),
        StructField("event_time", TimestampType()),
        StructField("ingest_time", TimestampType()),
        StructField("topic", StringType()),
        StructField("partition", IntegerType()),
        StructField("offset", LongType()),
        StructField("date", DateType()),
    ]
)
