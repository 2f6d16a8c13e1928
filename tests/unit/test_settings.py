import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from core import exits
from core.settings import Settings, SettingsError, duration_seconds, env_name, env_names, secret_env_names


def test_defaults_without_environment() -> None:
    assert Settings.from_env({}) == Settings()


def test_reads_each_type_from_its_env_var() -> None:
    settings = Settings.from_env(
        {
            "CRYPTOLAKE_KAFKA_TOPIC": "t",
            "CRYPTOLAKE_SHUFFLE_PARTITIONS": "8",
            "CRYPTOLAKE_SYMBOLS": "BTC-USDT, SOL-USDT ,",
        }
    )
    assert settings.kafka_topic == "t"
    assert settings.shuffle_partitions == 8
    assert settings.symbols == ("BTC-USDT", "SOL-USDT")


def test_env_round_trip() -> None:
    settings = Settings(kafka_bootstrap="kafka:9092", symbols=("A-B",), max_offsets_per_trigger=7)
    assert Settings.from_env(settings.to_env()) == settings
    assert list(settings.to_env()) == env_names()


@pytest.mark.parametrize(
    ("name", "value", "message"),
    [
        ("CRYPTOLAKE_SHUFFLE_PARTITIONS", "many", "whole number"),
        ("CRYPTOLAKE_SYMBOLS", " , ", "at least one"),
    ],
)
def test_bad_values_name_the_variable(name: str, value: str, message: str) -> None:
    with pytest.raises(SettingsError, match=f"{name}.*{message}"):
        Settings.from_env({name: value})


def test_redacted_masks_exactly_the_secrets() -> None:
    redacted = Settings().redacted()
    assert {k for k, v in redacted.items() if v == "***"} == set(secret_env_names())
    assert "cryptolake-secret" not in redacted.values()


def test_lake_paths_share_the_bucket() -> None:
    settings = Settings(lake_bucket="b")
    assert settings.table_uri("silver/trades") == "s3a://b/silver/trades"
    assert settings.checkpoint_uri("silver") == "s3a://b/_checkpoints/silver"


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("3 seconds", 3.0),
        ("1 second", 1.0),
        ("500 milliseconds", 0.5),
        ("10 minutes", 600.0),
        ("1 hour", 3600.0),
        ("1 minute 30 seconds", 90.0),
        ("interval 2 Days", 172800.0),
        (" 1.5 seconds ", 1.5),
        ("0 seconds", 0.0),
    ],
)
def test_duration_seconds_reads_spark_interval_strings(text: str, seconds: float) -> None:
    assert duration_seconds(text) == pytest.approx(seconds)


# What Spark's trigger refuses too: no unit, abbreviations, fractions of minutes, months, negative intervals.
@pytest.mark.parametrize("text", ["banana", "", "3", "3s", "3 sec", "1.5 minutes", "1 month", "-3 seconds", "3 4"])
def test_duration_seconds_refuses_what_spark_refuses(text: str) -> None:
    with pytest.raises(ValueError, match="not a duration"):
        duration_seconds(text)


@pytest.mark.parametrize(
    ("name", "value", "message"),
    [
        ("CRYPTOLAKE_TRIGGER_INTERVAL", "banana", "must be a duration such as '3 seconds'"),
        ("CRYPTOLAKE_SILVER_WATERMARK", "10 mins", "must be a duration"),
        ("CRYPTOLAKE_GOLD_WATERMARK", "10", "must be a duration"),
        ("CRYPTOLAKE_SHUFFLE_PARTITIONS", "-1", "must be a positive whole number, got -1"),
        ("CRYPTOLAKE_SHUFFLE_PARTITIONS", "0", "must be a positive whole number"),
        ("CRYPTOLAKE_MAX_OFFSETS_PER_TRIGGER", "0", "must be a positive whole number"),
        ("CRYPTOLAKE_INGESTOR_QUEUE_FRAMES", "0", "must be a positive whole number"),
        ("CRYPTOLAKE_INGESTOR_QUEUE_MIB", "-5", "must be a positive whole number"),
        ("CRYPTOLAKE_INGESTOR_FLUSH_SECONDS", "0", "must be a positive whole number"),
        ("CRYPTOLAKE_INGESTOR_HTTP_PORT", "0", "must be a port number from 1 to 65535"),
        ("CRYPTOLAKE_MINIO_CONSOLE_PORT", "65536", "must be a port number"),
        ("CRYPTOLAKE_KAFKA_CONTROLLER_PORT", "-1", "must be a port number"),
        ("CRYPTOLAKE_RESTART_BUDGET", "0", "must be a positive whole number"),
        ("CRYPTOLAKE_RESTART_WINDOW", "1 fortnight", "must be a duration"),
        ("CRYPTOLAKE_RESTART_WINDOW", "0 seconds", "must be a duration longer than 0"),
        ("CRYPTOLAKE_KAFKA_BOOTSTRAP", "localhost", "must be host:port pairs"),
        ("CRYPTOLAKE_KAFKA_BOOTSTRAP", "a:9092,b:99999", "must be host:port pairs"),
        ("CRYPTOLAKE_S3_ENDPOINT", "127.0.0.1:9000", "must be a URL starting with http:// or https://"),
        ("CRYPTOLAKE_BINANCE_URL", "https://stream.binance.com", "must be a URL starting with ws:// or wss://"),
        ("CRYPTOLAKE_BINANCE_URL", "ws://host:notaport", "must be a URL"),
        ("CRYPTOLAKE_VENUE_URL", "127.0.0.1:7", "must be empty or a URL starting with ws://"),
        ("CRYPTOLAKE_BACKFILL_URL", "data.binance.vision", "must be a URL starting with http:// or https://"),
        ("CRYPTOLAKE_BACKFILL_TRADES_PER_SECOND", "0", "must be a positive whole number"),
        ("CRYPTOLAKE_VENUES", "binance,binanse", "unknown venue 'binanse'; known: binance, kraken"),
        ("CRYPTOLAKE_SYMBOLS", "btcusdt", "must be symbols in capitals such as BTC-USDT"),
        ("CRYPTOLAKE_OKX_SYMBOLS", " , ", "must list at least one item"),
        ("CRYPTOLAKE_KAFKA_TOPIC", "bad topic", "must be a Kafka topic name"),
        ("CRYPTOLAKE_LAKE_BUCKET", "Lake_House", "must be a bucket name"),
        ("CRYPTOLAKE_S3_REGION", "", "must be non-empty"),
        ("CRYPTOLAKE_SPARK_MASTER", "local2", "must be empty, local"),
        ("CRYPTOLAKE_REST_URLS", "okx=https://www.okx.com", "must be venue=URL or venue=off, the venue one of binance"),
        ("CRYPTOLAKE_REST_URLS", "binance=api.binance.com", "must be a URL starting with http:// or https://"),
    ],
)
def test_every_kind_of_bad_value_fails_at_once_naming_the_variable_and_what_it_must_be(
    name: str, value: str, message: str
) -> None:
    with pytest.raises(SettingsError, match=f"^{name}: {re.escape(message)}"):
        Settings.from_env({name: value})


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("CRYPTOLAKE_TRIGGER_INTERVAL", "0 seconds"),  # Spark: as fast as it can
        ("CRYPTOLAKE_VENUE_URL", ""),
        ("CRYPTOLAKE_SPARK_MASTER", "local[*]"),
        ("CRYPTOLAKE_SPARK_MASTER", "k8s://https://kubernetes.default.svc:443"),
        ("CRYPTOLAKE_KAFKA_BOOTSTRAP", "redpanda-0.redpanda:9092,[::1]:9093"),
        ("CRYPTOLAKE_OKX_SYMBOLS", "BTC-USD-250926,BTC-USDT-SWAP"),
        ("CRYPTOLAKE_REST_URLS", "binance=https://api.binance.us,kraken=off"),
    ],
)
def test_values_at_the_edges_are_taken(name: str, value: str) -> None:
    assert Settings.from_env({name: value}).to_env()[name] == value


@pytest.mark.parametrize("name", [env_name(name) for name in Settings.model_fields if name.startswith("silver_max_")])
def test_silver_quarantine_bounds_take_0_but_nothing_below(name: str) -> None:
    assert Settings.from_env({name: "0"}).to_env()[name] == "0"
    with pytest.raises(SettingsError, match=f"^{name}: must be 0 or a positive whole number, got -1"):
        Settings.from_env({name: "-1"})


def test_settings_built_in_code_are_checked_too() -> None:
    with pytest.raises(SettingsError, match=r"^CRYPTOLAKE_SHUFFLE_PARTITIONS: must be a positive"):
        Settings(shuffle_partitions=0)
    with pytest.raises(SettingsError, match=r"^CRYPTOLAKE_GOLD_WATERMARK: must be a duration"):
        Settings().with_(gold_watermark="soon")
    with pytest.raises(SettingsError, match=r"^CRYPTOLAKE_SHUFFLE_PARTITIONS: must be a whole number, got '8'"):
        Settings(shuffle_partitions="8")  # type: ignore[arg-type]
    with pytest.raises(SettingsError, match=r"^CRYPTOLAKE_SYMBOLS: must be a tuple of strings"):
        Settings(symbols=["BTC-USDT"])  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "command",
    [
        ["-m", "cryptolake.cli", "up"],
        ["-m", "ingestion"],
        ["-m", "jobs.bronze"],
    ],
    ids=["cryptolake up", "ingestor", "bronze job"],
)
def test_entry_points_exit_with_one_line_naming_the_bad_setting(command: list[str], tmp_path: Path) -> None:
    # One exit code for a bad setting across the command, the ingestor and the jobs: no restart mends it.
    env = {k: v for k, v in os.environ.items() if not k.startswith("CRYPTOLAKE_")}
    env |= {"CRYPTOLAKE_TRIGGER_INTERVAL": "banana", "CRYPTOLAKE_LOCAL_HOME": str(tmp_path)}
    done = subprocess.run([sys.executable, *command], env=env, capture_output=True, text=True, timeout=120, check=False)
    output = (done.stdout + done.stderr).strip()
    assert done.returncode == exits.MISCONFIGURED == 2
    assert len(output.splitlines()) == 1, output
    assert "CRYPTOLAKE_TRIGGER_INTERVAL: must be a duration" in output
    assert not list(tmp_path.iterdir()), "nothing may be touched before the settings are checked"
