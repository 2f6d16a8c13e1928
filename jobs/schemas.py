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

# Bounds of what the lake keeps exactly (README, "Types"): prices below 10^8 with 10 decimals (a JPY-quoted BTC
# fits), sizes below 10^11 with 8 decimals (meme coins trade 10^10 units and more; venues give sizes to 8 decimals at
# most). 18 + 19 digits keep price * size exact within Spark's widest decimal, (38, 18).
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


def _struct(**fields: DataType) -> StructType:
    return StructType([StructField(name, kind) for name, kind in fields.items()])


# Wire schemas of the venues' trade frames. Prices and sizes are read as strings, whether the venue sends JSON strings
# or numbers (Spark keeps a number's text), and typed later without loss.

# Binance's "t" and "T" (and Bybit's "s" and "S") differ only in case, which Spark's field resolution does not tell
# apart: the parsers cast these structs, by position, to the readable names of the second schema before using them.
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
BINANCE_FRAME = _struct(stream=StringType(), data=BINANCE_TRADE_WIRE)

KRAKEN_FRAME = _struct(
    channel=StringType(),
    type=StringType(),
    data=ArrayType(
        _struct(
            symbol=StringType(),
            side=StringType(),
            price=StringType(),
            qty=StringType(),
            trade_id=LongType(),
            timestamp=StringType(),
        )
    ),
)

COINBASE_FRAME = _struct(
    channel=StringType(),
    events=ArrayType(
        _struct(
            type=StringType(),
            trades=ArrayType(
                _struct(
                    product_id=StringType(),
                    trade_id=StringType(),
                    price=StringType(),
                    size=StringType(),
                    time=StringType(),
                    side=StringType(),
                )
            ),
        )
    ),
)

BYBIT_TRADE_WIRE = _struct(i=StringType(), T=LongType(), p=StringType(), v=StringType(), S=StringType(), s=StringType())
BYBIT_TRADE = _struct(
    trade_id=StringType(),
    trade_time=LongType(),
    price=StringType(),
    volume=StringType(),
    taker_side=StringType(),
    venue_symbol=StringType(),
)
BYBIT_FRAME = _struct(topic=StringType(), data=ArrayType(BYBIT_TRADE_WIRE))

OKX_FRAME = _struct(
    arg=_struct(channel=StringType(), instId=StringType()),
    data=ArrayType(
        _struct(
            instId=StringType(),
            tradeId=StringType(),
            px=StringType(),
            sz=StringType(),
            side=StringType(),
            ts=StringType(),
        )
    ),
)

# What every venue's parser returns for one trade; the symbol is null where the frame only has the venue's unsplit
# spelling (BTCUSDT), and the Kafka key's canonical symbol stands in.
PARSED_TRADE = _struct(
    symbol=StringType(),
    trade_id=StringType(),
    price=StringType(),
    size=StringType(),
    side=StringType(),
    event_time=TimestampType(),
)

SILVER = StructType(
    [
        StructField("exchange", StringType()),
        StructField("symbol", StringType()),
        StructField("base", StringType()),
        StructField("quote", StringType()),
        StructField("trade_id", StringType()),
        StructField("price", PRICE),
        StructField("size", SIZE),
        StructField("quote_amount", QUOTE_AMOUNT),
        StructField("side", StringType()),
        StructField("event_time", TimestampType()),
        StructField("ingest_time", TimestampType()),
        StructField("topic", StringType()),
        StructField("partition", IntegerType()),
        StructField("offset", LongType()),
        # Position of the trade in its frame: with partition and offset, the venue's own order of its trades.
        StructField("frame_index", IntegerType()),
        # Time of the silver micro-batch that wrote the trade: later batches have later times (gold's late trades).
        StructField("silver_time", TimestampType()),
        StructField("date", DateType()),
    ]
)
