"""The one settings model of cryptolake, a pydantic-settings model.

Every tunable of the ingestor, the Spark jobs, the Helm charts and the local mode is a field here, read from an
environment variable named ``CRYPTOLAKE_`` + the field name in upper case. Nothing else spells these names: the
charts' env is checked against :func:`env_names`, and local mode hands :meth:`Settings.to_env` to its children.
Pydantic checks each value's type strictly (a setting built in code is refused the wrong type, not converted) and
then the setting's own check; either refusal is a :class:`SettingsError` naming the variable.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Mapping
from typing import Any
from urllib.parse import urlsplit

from pydantic import AfterValidator, Field, ValidationError, ValidationInfo, field_validator
from pydantic.fields import FieldInfo
from pydantic_core import ErrorDetails
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

from core.venues import FEEDS, LAKE_VENUES

ENV_PREFIX = "CRYPTOLAKE_"


# A check returns what is wrong with a setting's value, or None when the value is fine.
Check = Callable[[Any], str | None]


class SettingsError(ValueError):
    """An environment variable holds a value its setting cannot take."""


# Seconds in each unit of the interval strings Spark takes for triggers and watermarks. Months and years are left
# out: their length varies, and Spark refuses them for a trigger.
_UNIT_SECONDS = {
    "microsecond": 1e-6,
    "millisecond": 1e-3,
    "second": 1.0,
    "minute": 60.0,
    "hour": 3600.0,
    "day": 86400.0,
    "week": 604800.0,
}
_WHOLE = re.compile(r"\d+")
_DECIMAL = re.compile(r"\d+(\.\d+)?")  # Spark takes a fraction of seconds only


def duration_seconds(text: str) -> float:
    """Seconds in a Spark interval string: "3 seconds", "1 minute 30 seconds", "500 milliseconds"; ValueError if not.

    What Spark's triggers and watermarks take: an optional leading "interval", then pairs of a number (a fraction for
    seconds only) and a unit, singular or plural, in any case.
    """
    words = text.lower().split()
    if words[:1] == ["interval"]:
        words = words[1:]
    if not words or len(words) % 2:
        raise ValueError(f"{text!r} is not a duration such as '3 seconds', '10 minutes' or '500 milliseconds'")
    seconds = 0.0
    for number, word in zip(words[::2], words[1::2], strict=True):
        unit = word.removesuffix("s")
        if unit not in _UNIT_SECONDS or not (_DECIMAL if unit == "second" else _WHOLE).fullmatch(number):
            raise ValueError(f"{text!r} is not a duration such as '3 seconds', '10 minutes' or '500 milliseconds'")
        seconds += float(number) * _UNIT_SECONDS[unit]
    return seconds


def _duration(value: str) -> str | None:
    try:
        duration_seconds(value)
    except ValueError:
        return f"must be a duration such as '3 seconds', '10 minutes' or '500 milliseconds', got {value!r}"
    return None


def _positive_duration(value: str) -> str | None:
    problem = _duration(value)
    if problem is None and duration_seconds(value) <= 0:
        return f"must be a duration longer than 0, such as '1 hour', got {value!r}"
    return problem


def _positive(value: int) -> str | None:
    return None if value > 0 else f"must be a positive whole number, got {value}"


def _non_negative(value: int) -> str | None:
    return None if value >= 0 else f"must be 0 or a positive whole number, got {value}"


def _port(value: int) -> str | None:
    # No setting uses 0 for "any free port": local mode picks free ports itself and passes them on.
    return None if 1 <= value <= 65535 else f"must be a port number from 1 to 65535, got {value}"


def _is_host_port(address: str) -> bool:
    host, sep, port = address.strip().rpartition(":")
    return bool(sep and host.strip("[]")) and port.isdigit() and _port(int(port)) is None


def _host_ports(value: str) -> str | None:
    if all(_is_host_port(address) for address in value.split(",")):
        return None
    return f"must be host:port pairs, comma-separated (e.g. kafka:9092), got {value!r}"


def _url(*schemes: str, optional: bool = False) -> Check:
    """A URL of one of ``schemes`` with a host and a valid port if any; ``optional``: empty is fine too."""
    wanted = " or ".join(f"{scheme}://" for scheme in schemes)

    def check(value: str) -> str | None:
        if optional and not value:
            return None
        parts = urlsplit(value)
        try:
            port_ok = parts.port != 0  # urlsplit raises for a port that is no number or beyond 65535
        except ValueError:
            port_ok = False
        if parts.scheme in schemes and parts.hostname and port_ok:
            return None
        return f"must be {'empty or ' if optional else ''}a URL starting with {wanted}, got {value!r}"

    return check


def _matching(pattern: str, what: str) -> Check:
    compiled = re.compile(pattern)

    def check(value: str) -> str | None:
        return None if compiled.fullmatch(value) else f"must be {what}, got {value!r}"

    return check


def _each(item: Check) -> Check:
    """At least one item, each passing ``item``."""

    def check(values: tuple[str, ...]) -> str | None:
        if not values:
            return "must list at least one item, comma-separated"
        return next(filter(None, map(item, values)), None)

    return check


def _known_venue(value: str) -> str | None:
    return None if value in FEEDS else f"unknown venue {value!r}; known: {', '.join(FEEDS)}"


def _rest_url(value: str) -> str | None:
    venue, sep, url = value.partition("=")
    filling = [name for name, cls in LAKE_VENUES.items() if cls.rest is not None]
    if not sep or venue not in filling:
        return f"must be venue=URL or venue=off, the venue one of {', '.join(filling)}, got {value!r}"
    return None if url == "off" else _url("http", "https")(url)


def _any_path(_value: str) -> str | None:
    # Whether a path exists depends on the machine that reads the setting, so it is checked where it is used.
    return None


def _any_text(_value: str) -> str | None:
    return None


_non_empty = _matching(r".+", "non-empty")
_topic = _matching(r"[A-Za-z0-9._-]{1,249}", "a Kafka topic name (letters, digits, '.', '_', '-')")
_bucket = _matching(r"[a-z0-9][a-z0-9.-]*", "a bucket name (lower-case letters, digits, '.', '-')")
_symbols = _each(_matching(r"[A-Z0-9]+(-[A-Z0-9]+)+", "symbols in capitals such as BTC-USDT or BTC-USDT-SWAP"))
# Empty leaves the master to spark-submit; else local, local[N] (or local-cluster[...]), yarn, or a master URL.
_spark_master = _matching(
    r"|local|local(-cluster)?\[[0-9*, ]+\]|yarn|[a-z][a-z0-9+.-]*://.+", "empty, local[N], yarn or a master URL"
)


def _type_problem(value: Any, hint: Any) -> str | None:
    if hint is int:
        ok, what = isinstance(value, int) and not isinstance(value, bool), "a whole number"
    elif hint is str:
        ok, what = isinstance(value, str), "text"
    else:
        ok, what = isinstance(value, tuple) and all(isinstance(v, str) for v in value), "a tuple of strings"
    return None if ok else f"must be {what}, got {value!r}"


def _refusing(check: Check) -> Callable[[Any], Any]:
    def validate(value: Any) -> Any:
        problem = check(value)
        if problem is not None:
            raise ValueError(problem)
        return value

    return validate


def _setting(default: Any, help: str, check: Check, *, secret: bool = False, local: bool = False) -> Any:
    # `check`: what the value must be, once its type is right. `secret`: charts take it from a Secret, logs never
    # print it. `local`: only local mode reads it.
    info = Field(default, description=help, json_schema_extra={"secret": secret, "local": local})
    info.metadata.append(AfterValidator(_refusing(check)))
    return info


class Settings(BaseSettings):
    """Every setting, with the default of the embedded local mode."""

    model_config = SettingsConfigDict(frozen=True, strict=True, extra="forbid", validate_default=True)

    kafka_bootstrap: str = _setting(
        "127.0.0.1:9092", "Kafka bootstrap servers (Redpanda's in the cluster).", _host_ports
    )
    kafka_topic: str = _setting("crypto.trades", "Topic the ingestor writes raw frames to and bronze reads.", _topic)
    kafka_security_protocol: str = _setting(
        "PLAINTEXT",
        "How the Kafka clients talk to the brokers: PLAINTEXT, SSL, SASL_PLAINTEXT or SASL_SSL (a broker of your own).",
        _matching(r"PLAINTEXT|SSL|SASL_PLAINTEXT|SASL_SSL", "PLAINTEXT, SSL, SASL_PLAINTEXT or SASL_SSL"),
    )
    kafka_sasl_mechanism: str = _setting(
        "SCRAM-SHA-512",
        "SASL mechanism of the Kafka user, when the protocol is SASL_*: SCRAM-SHA-512, SCRAM-SHA-256 or PLAIN.",
        _matching(r"SCRAM-SHA-512|SCRAM-SHA-256|PLAIN", "SCRAM-SHA-512, SCRAM-SHA-256 or PLAIN"),
    )
    kafka_sasl_username: str = _setting("", "Kafka user name, when the protocol is SASL_*.", _any_text)
    kafka_sasl_password: str = _setting(
        "", "Kafka user's password, when the protocol is SASL_*.", _any_text, secret=True
    )
    kafka_ca_file: str = _setting(
        "", "PEM file of the CAs the Kafka clients trust over TLS; empty: the system's.", _any_path
    )
    s3_endpoint: str = _setting(
        "http://127.0.0.1:9000", "S3 API endpoint of the object store (MinIO).", _url("http", "https")
    )
    s3_access_key: str = _setting("cryptolake", "Access key of the lake's S3 user.", _non_empty, secret=True)
    s3_secret_key: str = _setting("cryptolake-secret", "Secret key of the lake's S3 user.", _non_empty, secret=True)
    s3_region: str = _setting("us-east-1", "Region the S3 client signs for; MinIO accepts any.", _non_empty)
    lake_bucket: str = _setting("lakehouse", "Bucket holding every layer's tables and checkpoints.", _bucket)
    symbols: tuple[str, ...] = _setting(
        ("BTC-USDT", "ETH-USDT"), "Canonical BASE-QUOTE symbols to ingest, comma-separated.", _symbols
    )
    binance_url: str = _setting(
        "wss://stream.binance.com:9443",
        "Binance WebSocket base URL; local mode points it at its own venue.",
        _url("ws", "wss"),
    )
    ingestor_http_port: int = _setting(9108, "Port of the ingestor's /metrics, /healthz and /readyz.", _port)
    ingestor_http_host: str = _setting(
        "0.0.0.0",  # noqa: S104 - in a pod, the kubelet's probes and Prometheus come from outside it
        "Address the ingestor's /metrics, /healthz and /readyz listen on; local mode listens on 127.0.0.1 only.",
        _non_empty,
    )
    venues: tuple[str, ...] = _setting(
        ("binance",),
        "Venues the ingestor streams trades from, comma-separated: binance, kraken, coinbase, bybit, okx "
        "(also kraken-v1 and coinbase-exchange, the older protocols). Each takes its symbols from its own setting.",
        _each(_known_venue),
    )
    kraken_symbols: tuple[str, ...] = _setting(
        ("BTC-USD", "ETH-USD"),
        "Canonical BASE-QUOTE symbols to ingest from Kraken (CRYPTOLAKE_SYMBOLS: Binance's).",
        _symbols,
    )
    coinbase_symbols: tuple[str, ...] = _setting(
        ("BTC-USD", "ETH-USD"), "Canonical BASE-QUOTE symbols to ingest from Coinbase, e.g. BTC-USD.", _symbols
    )
    bybit_symbols: tuple[str, ...] = _setting(
        ("BTC-USDT", "ETH-USDT"),
        "Canonical symbols to ingest from Bybit: BTC-USDT for spot, BTC-USDT-SWAP for the linear perpetual.",
        _symbols,
    )
    okx_symbols: tuple[str, ...] = _setting(
        ("BTC-USDT", "ETH-USDT"),
        "OKX instrument ids to ingest: BTC-USDT (spot), BTC-USDT-SWAP, BTC-USD-250926.",
        _symbols,
    )
    ingestor_queue_frames: int = _setting(
        100_000,
        "Most frames the ingestor holds while Kafka is slow or down; when full it stops reading the venues "
        "(it blocks, it never drops a received frame).",
        _positive,
    )
    ingestor_queue_mib: int = _setting(
        32,
        "Most MiB of frames the ingestor holds while Kafka is slow or down; fit it in the pod's memory limit.",
        _positive,
    )
    ingestor_flush_seconds: int = _setting(
        10,
        "On SIGTERM, how long the ingestor waits for Kafka to take queued frames (below the pod's grace period).",
        _positive,
    )
    backfill_url: str = _setting(
        "https://data.binance.vision",
        "Base URL of Binance's public trade archive, which `cryptolake backfill` reads its daily files from.",
        _url("http", "https"),
    )
    backfill_trades_per_second: int = _setting(
        1_000,
        "Most trades a second `cryptolake backfill` sends to Kafka: under a third of what the layers drain on two "
        "cores, so the live stream keeps its freshness while a backfill runs.",
        _positive,
    )
    venue_url: str = _setting(
        "",
        "Base URL of a local venue serving every feed under /<venue> (cryptolake replay); empty: the real venues.",
        _url("ws", "wss", optional=True),
        local=True,
    )
    rest_urls: tuple[str, ...] = _setting(
        (),
        "Where the ingestor fills gaps in a venue's trade ids from: venue=URL of its REST API, or venue=off to fill "
        "none, comma-separated; a venue not listed uses its public API (the local venue's when venue_url is set).",
        lambda values: next(filter(None, map(_rest_url, values)), None),
    )
    trigger_interval: str = _setting("3 seconds", "Micro-batch trigger interval of every streaming query.", _duration)
    max_offsets_per_trigger: int = _setting(200_000, "Most Kafka records bronze reads in one micro-batch.", _positive)
    shuffle_partitions: int = _setting(
        2, "spark.sql.shuffle.partitions: state partitions of silver and gold.", _positive
    )
    silver_watermark: str = _setting(
        "10 minutes",
        "How long silver remembers a trade id to drop its duplicates, on the ingestor's clock (Kafka time), which "
        "venues cannot skew.",
        _duration,
    )
    silver_max_future_seconds: int = _setting(
        10,
        "Quarantine trades stamped more than this many seconds after their ingest time: a venue's clock or parser "
        "error, kept out so that one bad stamp cannot move gold's watermark.",
        _non_negative,
    )
    silver_max_age_hours: int = _setting(
        24,
        "Quarantine trades stamped more than this many hours before their ingest time; replayed recordings are "
        "exempt, and 0 turns the bound off.",
        _non_negative,
    )
    gold_watermark: str = _setting(
        "10 seconds",
        "How far gold's watermark trails its newest trade: a bar is complete once its end is behind it. A trade that "
        "comes later still counts: it restates its bar.",
        _duration,
    )
    bronze_retention_days: int = _setting(
        30, "Days of bronze kept, by ingest date; older days are deleted. 0 keeps every day.", _non_negative
    )
    silver_retention_days: int = _setting(
        0, "Days of silver trades and quarantine rows kept, by date; 0 (the default) keeps every day.", _non_negative
    )
    gold_retention_days: int = _setting(
        0, "Days of gold bars kept, by date; 0 (the default) keeps every day.", _non_negative
    )
    lake_maintenance_interval: str = _setting(
        "1 hour",
        "How often each layer expires its tables' old days and vacuums the files no version needs any more.",
        _duration,
    )
    lake_file_retention: str = _setting(
        "7 days",
        "How long a file replaced by a newer version (compaction, restatement, expiry) is kept for readers and time "
        "travel before vacuum deletes it.",
        _duration,
    )
    lake_log_retention: str = _setting(
        "30 days", "How far back a new table's log keeps versions: its history and time travel.", _duration
    )
    spark_master: str = _setting("", "Spark master URL; empty leaves it to spark-submit (the operator).", _spark_master)
    spark_jars_dir: str = _setting(
        "", "Folder of the pinned Spark jars to add; empty when they are on Spark's classpath (the image).", _any_path
    )
    local_home: str = _setting(
        "",
        "Folder of local mode's service data, logs and PID files; empty means .cryptolake/local.",
        _any_path,
        local=True,
    )
    minio_console_port: int = _setting(9001, "Port of the local MinIO console.", _port, local=True)
    kafka_controller_port: int = _setting(9093, "Port of the local Kafka KRaft controller.", _port, local=True)
    restart_budget: int = _setting(
        10,
        "Most restarts of one child of `cryptolake up` (the ingestor, a layer, Kafka, MinIO, the venue) within "
        "CRYPTOLAKE_RESTART_WINDOW; one failure more stops `up` with its reason. Each restart waits twice as long "
        "as the one before it in the window.",
        _positive,
        local=True,
    )
    restart_window: str = _setting(
        "1 hour",
        "The sliding window CRYPTOLAKE_RESTART_BUDGET counts restarts in: failures further apart never add up.",
        _positive_duration,
        local=True,
    )
    log_max_mib: int = _setting(
        64,
        "Size in MiB past which `cryptolake up` rotates a child's log (logs/<name>.log): copied to <name>.log.1, "
        "older copies shifted to .2 and on, then emptied in place while the child writes on.",
        _positive,
        local=True,
    )
    log_keep: int = _setting(
        3,
        "Rotated copies kept of each child's log; the oldest beyond them is deleted. 0 keeps none: a full log is "
        "just emptied.",
        _non_negative,
        local=True,
    )

    @field_validator("kafka_sasl_password")
    @classmethod
    def _sasl_user_complete(cls, password: str, info: ValidationInfo) -> str:
        # Declared after the protocol and the user name, so both are checked and in info.data by now.
        protocol = info.data.get("kafka_security_protocol", "")
        if protocol.startswith("SASL_") and not (password and info.data.get("kafka_sasl_username")):
            raise ValueError(
                f"must be set, and {env_name('kafka_sasl_username')} too, "
                f"with {env_name('kafka_security_protocol')}={protocol}"
            )
        return password

    def __init__(self, **values: Any) -> None:
        """Refuse a value a setting cannot take, at once and naming its variable, whether read or built in code."""
        try:
            super().__init__(**values)
        except ValidationError as exc:
            raise SettingsError(_problem(exc.errors()[0], values)) from None

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        # Settings built in code are what they are given and the defaults: only from_env reads an environment.
        return (init_settings,)

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Settings:
        """Read every setting from ``environ`` (default: the process environment); absent ones keep defaults.

        Raises :class:`SettingsError` naming the first variable whose value its setting cannot take.
        """
        return cls(**_Environ(cls, os.environ if environ is None else environ)())

    def to_env(self) -> dict[str, str]:
        """The environment that makes :meth:`from_env` return these settings again."""
        return {env_name(name): _format(value) for name, value in self}

    def with_(self, **changes: Any) -> Settings:
        """A copy with ``changes``, checked as any settings are."""
        return type(self)(**{**dict(self), **changes})

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
        secret = set(secret_env_names())
        return {k: ("***" if k in secret else v) for k, v in self.to_env().items()}


def env_name(field_name: str) -> str:
    return ENV_PREFIX + field_name.upper()


def _flag(info: FieldInfo, name: str) -> bool:
    extra = info.json_schema_extra
    return isinstance(extra, dict) and bool(extra[name])


def env_names(*, include_local: bool = True) -> list[str]:
    """Every environment variable the settings model reads, in declaration order."""
    return [env_name(name) for name, info in Settings.model_fields.items() if include_local or not _flag(info, "local")]


def secret_env_names() -> list[str]:
    return [env_name(name) for name, info in Settings.model_fields.items() if _flag(info, "secret")]


def describe() -> list[dict[str, Any]]:
    """One entry per setting: env name, default (as env text), help, secret, local. Feeds docs and charts."""
    return [
        {
            "env": env_name(name),
            "default": _format(info.default),
            "help": info.description,
            "secret": _flag(info, "secret"),
            "local": _flag(info, "local"),
        }
        for name, info in Settings.model_fields.items()
    ]


def _problem(error: ErrorDetails, values: Mapping[str, Any]) -> str:
    """``CRYPTOLAKE_NAME: what it must be`` of pydantic's first complaint about ``values``."""
    name = str(error["loc"][0])
    if error["type"] == "value_error":  # the setting's own check
        return f"{env_name(name)}: {error['ctx']['error']}"
    if name not in Settings.model_fields:
        return f"{env_name(name)}: no such setting"
    return f"{env_name(name)}: {_type_problem(values[name], Settings.model_fields[name].annotation)}"


class _Environ(PydanticBaseSettingsSource):
    """The settings an environment sets: each variable's text read as its setting's type, lists comma-separated."""

    def __init__(self, settings_cls: type[BaseSettings], environ: Mapping[str, str]) -> None:
        super().__init__(settings_cls)
        self.environ = environ

    def get_field_value(self, field: FieldInfo, field_name: str) -> tuple[Any, str, bool]:
        return self.environ.get(env_name(field_name)), env_name(field_name), False

    def __call__(self) -> dict[str, Any]:
        values = {}
        for name, info in self.settings_cls.model_fields.items():
            raw, variable, _ = self.get_field_value(info, name)
            if raw is not None:
                values[name] = _parse(variable, raw, info.annotation)
        return values


def _parse(name: str, raw: str, hint: Any) -> Any:
    if hint is int:
        try:
            return int(raw)
        except ValueError:
            raise SettingsError(f"{name}: must be a whole number, got {raw!r}") from None
    if hint == tuple[str, ...]:
        return tuple(s.strip() for s in raw.split(",") if s.strip())
    return raw


def _format(value: Any) -> str:
    if isinstance(value, tuple):
        return ",".join(value)
    return str(value)
