"""The one settings model of cryptolake.

Every tunable of the ingestor, the Spark jobs, the Helm charts and the local mode is a field here, read from an
environment variable named ``CRYPTOLAKE_`` + the field name in upper case. Nothing else spells these names: the
charts' env is checked against :func:`env_names`, and local mode hands :meth:`Settings.to_env` to its children.
"""

from __future__ import annotations

import os
import typing
from collections.abc import Mapping
from dataclasses import MISSING, dataclass, field, fields, replace
from typing import Any

ENV_PREFIX = "CRYPTOLAKE_"


class SettingsError(ValueError):
    """An environment variable holds a value its setting cannot take."""


def _setting(default: Any, help: str, *, secret: bool = False, local: bool = False) -> Any:
    # `secret`: charts take it from a Secret, logs never print it. `local`: only local mode reads it.
    return field(default=default, metadata={"help": help, "secret": secret, "local": local})


@dataclass(frozen=True)
class Settings:
    """Every setting, with the default of the embedded local mode."""

    kafka_bootstrap: str = _setting("127.0.0.1:9092", "Kafka bootstrap servers (Redpanda's in the cluster).")
    kafka_topic: str = _setting("crypto.trades", "Topic the ingestor writes raw frames to and bronze reads.")
    s3_endpoint: str = _setting("http://127.0.0.1:9000", "S3 API endpoint of the object store (MinIO).")
    s3_access_key: str = _setting("cryptolake", "Access key of the lake's S3 user.", secret=True)
    s3_secret_key: str = _setting("cryptolake-secret", "Secret key of the lake's S3 user.", secret=True)
    s3_region: str = _setting("us-east-1", "Region the S3 client signs for; MinIO accepts any.")
    lake_bucket: str = _setting("lakehouse", "Bucket holding every layer's tables and checkpoints.")
    symbols: tuple[str, ...] = _setting(
        ("BTC-USDT", "ETH-USDT"), "Canonical BASE-QUOTE symbols to ingest, comma-separated."
    )
    binance_url: str = _setting(
        "wss://stream.binance.com:9443", "Binance WebSocket base URL; local mode points it at its own venue."
    )
    ingestor_http_port: int = _setting(9108, "Port of the ingestor's /metrics, /healthz and /readyz.")
    venues: tuple[str, ...] = _setting(
        ("binance",),
        "Venues the ingestor streams trades from, comma-separated: binance, kraken, coinbase, bybit, okx "
        "(also kraken-v1 and coinbase-exchange, the older protocols). Each takes its symbols from its own setting.",
    )
    kraken_symbols: tuple[str, ...] = _setting(
        ("BTC-USD", "ETH-USD"), "Canonical BASE-QUOTE symbols to ingest from Kraken (CRYPTOLAKE_SYMBOLS: Binance's)."
    )
    coinbase_symbols: tuple[str, ...] = _setting(
        ("BTC-USD", "ETH-USD"), "Canonical BASE-QUOTE symbols to ingest from Coinbase, e.g. BTC-USD."
    )
    bybit_symbols: tuple[str, ...] = _setting(
        ("BTC-USDT", "ETH-USDT"),
        "Canonical symbols to ingest from Bybit: BTC-USDT for spot, BTC-USDT-SWAP for the linear perpetual.",
    )
    okx_symbols: tuple[str, ...] = _setting(
        ("BTC-USDT", "ETH-USDT"), "OKX instrument ids to ingest: BTC-USDT (spot), BTC-USDT-SWAP, BTC-USD-250926."
    )
    ingestor_queue_frames: int = _setting(
        100_000,
        "Most frames the ingestor holds while Kafka is slow or down; when full it stops reading the venues "
        "(it blocks, it never drops a received frame).",
    )
    ingestor_queue_mib: int = _setting(
        32, "Most MiB of frames the ingestor holds while Kafka is slow or down; fit it in the pod's memory limit."
    )
    ingestor_flush_seconds: int = _setting(
        10, "On SIGTERM, how long the ingestor waits for Kafka to take queued frames (below the pod's grace period)."
    )
    venue_url: str = _setting(
        "",
        "Base URL of a local venue serving every feed under /<venue> (cryptolake replay); empty: the real venues.",
        local=True,
    )
    trigger_interval: str = _setting("3 seconds", "Micro-batch trigger interval of every streaming query.")
    max_offsets_per_trigger: int = _setting(200_000, "Most Kafka records bronze reads in one micro-batch.")
    shuffle_partitions: int = _setting(2, "spark.sql.shuffle.partitions: state partitions of silver and gold.")
    silver_watermark: str = _setting(
        "10 minutes", "How long silver remembers a trade id to drop its duplicates (event time)."
    )
    silver_max_clock_skew_hours: int = _setting(
        24, "Quarantine trades whose event time is further than this from their ingest time; 0 turns it off (replays)."
    )
    gold_watermark: str = _setting("10 seconds", "How late a trade may arrive and still count in its bar.")
    spark_master: str = _setting("", "Spark master URL; empty leaves it to spark-submit (the operator).")
    spark_jars_dir: str = _setting(
        "", "Folder of the pinned Spark jars to add; empty when they are on Spark's classpath (the image)."
    )
    local_home: str = _setting(
        "", "Folder of local mode's service data, logs and PID files; empty means .cryptolake/local.", local=True
    )
    minio_console_port: int = _setting(9001, "Port of the local MinIO console.", local=True)
    kafka_controller_port: int = _setting(9093, "Port of the local Kafka KRaft controller.", local=True)

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Settings:
        """Read every setting from ``environ`` (default: the process environment); absent ones keep defaults."""
        environ = os.environ if environ is None else environ
        hints = typing.get_type_hints(cls)
        values: dict[str, Any] = {}
        for f in fields(cls):
            raw = environ.get(env_name(f.name))
            if raw is not None:
                values[f.name] = _parse(env_name(f.name), raw, hints[f.name])
        return cls(**values)

    def to_env(self) -> dict[str, str]:
        """The environment that makes :meth:`from_env` return these settings again."""
        return {env_name(f.name): _format(getattr(self, f.name)) for f in fields(self)}

    def with_(self, **changes: Any) -> Settings:
        return replace(self, **changes)

    def table_uri(self, table: str) -> str:
        """s3a URI of a lake table, e.g. ``bronze/trades``."""
        return f"s3a://{self.lake_bucket}/{table}"

    @staticmethod
    def checkpoint_key(query: str) -> str:
        """Key prefix of a streaming query's checkpoint; kept beside the tables so one bucket holds all state."""
        return f"_checkpoints/{query}"

    def checkpoint_uri(self, query: str) -> str:
        return self.table_uri(self.checkpoint_key(query))

    def redacted(self) -> dict[str, str]:
        """Settings as env, secrets masked: what may go to a log."""
        secret = {env_name(f.name) for f in fields(self) if f.metadata["secret"]}
        return {k: ("***" if k in secret else v) for k, v in self.to_env().items()}


def env_name(field_name: str) -> str:
    return ENV_PREFIX + field_name.upper()


def env_names(*, include_local: bool = True) -> list[str]:
    """Every environment variable the settings model reads, in declaration order."""
    return [env_name(f.name) for f in fields(Settings) if include_local or not f.metadata["local"]]


def secret_env_names() -> list[str]:
    return [env_name(f.name) for f in fields(Settings) if f.metadata["secret"]]


def describe() -> list[dict[str, Any]]:
    """One entry per setting: env name, default (as env text), help, secret, local. Feeds docs and charts."""
    out = []
    for f in fields(Settings):
        default = f.default if f.default is not MISSING else None
        out.append(
            {
                "env": env_name(f.name),
                "default": _format(default),
                "help": f.metadata["help"],
                "secret": f.metadata["secret"],
                "local": f.metadata["local"],
            }
        )
    return out


def _parse(name: str, raw: str, hint: Any) -> Any:
    if hint is int:
        try:
            return int(raw)
        except ValueError:
            raise SettingsError(f"{name} must be a whole number, got {raw!r}") from None
    if hint == tuple[str, ...]:
        items = tuple(s.strip() for s in raw.split(",") if s.strip())
        if not items:
            raise SettingsError(f"{name} must list at least one item, comma-separated; got {raw!r}")
        return items
    return raw


def _format(value: Any) -> str:
    if isinstance(value, tuple):
        return ",".join(value)
    return str(value)
