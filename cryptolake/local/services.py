"""Local mode's services together: install what they need once, then start and stop Kafka and MinIO as a pair."""

from __future__ import annotations

import logging
from types import TracebackType

from core import jars
from core.settings import Settings
from cryptolake.local.kafka import Kafka, ensure_topic, install_kafka
from cryptolake.local.minio import MinIO, ensure_bucket, install_minio
from cryptolake.local.paths import LocalPaths
from cryptolake.local.procs import ServiceError

log = logging.getLogger(__name__)


def install(settings: Settings) -> None:
    """Put the Spark jars, the Kafka jars and the MinIO binary in the cache; what is there already is kept."""
    paths = LocalPaths.of(settings)
    try:
        jars.fetch(paths.spark_jars, jars.read_pins())
    except RuntimeError as exc:
        raise ServiceError(
            f"Spark jars could not be installed ({exc}); check access to Maven Central and retry"
        ) from exc
    log.info("Spark jars in %s", paths.spark_jars)
    log.info("Kafka jars in %s", install_kafka(paths))
    log.info("MinIO binary at %s", install_minio(paths))


class LocalServices:
    """Kafka and MinIO of one state folder, with the lake's topic and bucket in place once started."""

    def __init__(self, settings: Settings, *, topic_partitions: int = 4, timeout: float = 120.0) -> None:
        self.settings = settings
        self.topic_partitions = topic_partitions
        self.timeout = timeout
        self.kafka = Kafka(settings)
        self.minio = MinIO(settings)
        self._started: dict[str, int] = {}

    def start(self) -> None:
        """Start both services (or raise having started neither), then create the topic and the bucket."""
        # Every check before the first process, so a busy port or a running copy leaves nothing half-started.
        self.kafka.check_can_start()
        self.minio.check_can_start()
        try:
            # Both boot at once; waiting for each in turn afterwards costs the slower one's time only.
            self._started["kafka"] = self.kafka.launch()
            self._started["minio"] = self.minio.launch()
            self.kafka.wait_ready(self.timeout)
            self.minio.wait_ready(self.timeout)
            ensure_topic(self.settings, self.topic_partitions)
            ensure_bucket(self.settings)
        except BaseException:
            self.stop()
            raise
        log.info("local services up: Kafka %s, MinIO %s", self.settings.kafka_bootstrap, self.settings.s3_endpoint)

    def stop(self) -> None:
        """Stop both services of this state folder, whoever started them (their PID files say which)."""
        try:
            self.minio.stop()
        finally:
            self.kafka.stop()
            self._started.clear()

    def pids(self) -> dict[str, int]:
        """PIDs of the processes this object started, by service name (``kafka``, ``minio``)."""
        return dict(self._started)

    def running(self) -> dict[str, int]:
        """PIDs of this state folder's services that run now, whoever started them."""
        found = {"kafka": self.kafka.pid, "minio": self.minio.pid}
        return {name: pid for name, pid in found.items() if pid is not None}

    def __enter__(self) -> LocalServices:
        self.start()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, traceback: TracebackType | None
    ) -> None:
        self.stop()
