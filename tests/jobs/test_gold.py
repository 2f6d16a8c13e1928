from datetime import datetime
from decimal import Decimal

from pyspark.sql import SparkSession
from pyspark.testing import assertDataFrameEqual

from jobs import schemas
from jobs.gold import bars

T0 = datetime(2024, 8, 8, 23, 54, 0)


def _trade(symbol: str, trade_id: str, price: str, size: str, second: float, side: str) -> tuple[object, ...]:
    p, s = Decimal(price), Decimal(size)
    event_time = T0.replace(second=int(second), microsecond=round(second % 1 * 1e6))
    return ("binance", symbol, *symbol.split("-"), trade_id, p, s, p * s, side, event_time, event_time,
            "crypto.trades", 0, 0, event_time.date())  # fmt: skip


def test_one_minute_bar_maths(spark: SparkSession) -> None:
    trades = spark.createDataFrame(
        [
            # Ids 9 and 10 share the first timestamp: 9 comes first, numerically, so it opens the bar.
            _trade("BTC-USDT", "10", "101", "2", 1.5, "buy"),
            _trade("BTC-USDT", "9", "100", "1", 1.5, "sell"),
            _trade("BTC-USDT", "11", "105", "0.5", 20, "buy"),
            _trade("BTC-USDT", "12", "99", "1.5", 59.999, "sell"),
        ],
        schemas.SILVER,
    )
    result = bars(trades, "1m", "10 seconds").drop("date")
    quote = Decimal("202") + Decimal("100") + Decimal("52.5") + Decimal("148.5")
    expected = [
        (T0, T0.replace(minute=55), "binance", "BTC-USDT", Decimal(100), Decimal(105), Decimal(99), Decimal(99),
         Decimal(5), quote, float(quote / 5), 4, Decimal("2.5"), Decimal("2.5"), "9", "12"),
    ]  # fmt: skip
    assertDataFrameEqual(result, spark.createDataFrame(expected, result.schema))


def test_bars_split_by_minute_exchange_and_symbol(spark: SparkSession) -> None:
    eth = _trade("ETH-USDT", "1", "3000", "1", 5, "buy")
    rows = [
        _trade("BTC-USDT", "1", "100", "1", 5, "buy"),
        eth,
        ("okx", *eth[1:]),
    ]
    later = list(_trade("BTC-USDT", "2", "110", "1", 5, "sell"))
    later[9] = later[10] = T0.replace(minute=56, second=5)
    rows.append(tuple(later))
    result = bars(spark.createDataFrame(rows, schemas.SILVER), "1m", "10 seconds")
    keys = sorted((r.bar_start.minute, r.exchange, r.symbol, r.trades) for r in result.collect())
    assert keys == [(54, "binance", "BTC-USDT", 1), (54, "binance", "ETH-USDT", 1), (54, "okx", "ETH-USDT", 1),
                    (56, "binance", "BTC-USDT", 1)]  # fmt: skip
