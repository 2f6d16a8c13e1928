"""The Kafka broker of local mode: one KRaft node (broker and controller) from jars pinned in ``kafka-jars.txt``."""

from __future__ import annotations

import base64
import logging
import os
import shutil
import time
import uuid
from pathlib import Path
from string import Template

from confluent_kafka import KafkaException
from confluent_kafka.admin import AdminClient
from confluent_kafka.cimpl import NewTopic  # where mypy sees it: confluent_kafka.admin does not export it

from core.jars import fetch, read_pins
from core.kafka import java_config, java_quoted, librdkafka_config
from core.settings import Settings, env_name
from cryptolake.local.paths import LocalPaths
from cryptolake.local.procs import (
    ManagedProcess,
    ServiceError,
    can_connect,
    check_port_free,
    join_host_port,
    split_host_port,
)
from ingestion.topics import create_topic

KAFKA_VERSION = "4.1.2"
PINS = Path(__file__).with_name("kafka-jars.txt")
SERVER_TEMPLATE = Path(__file__).with_name("kafka-server.properties")
LOG4J_CONFIG = Path(__file__).with_name("kafka-log4j2.properties")
LOCAL_PROTOCOLS = ("PLAINTEXT", "SASL_PLAINTEXT")  # TLS needs certificates local mode does not make
# Small heap: the same machine runs the Spark driver and executors. G1 with short pauses as in kafka-server-start.sh.
JVM_OPTS = ("-Xms128m", "-Xmx512m", "-XX:+UseG1GC", "-XX:MaxGCPauseMillis=20", "-Djava.awt.headless=true")

log = logging.getLogger(__name__)


def jars_dir(paths: LocalPaths) -> Path:
    return paths.tools / f"kafka-{KAFKA_VERSION}"


def install_kafka(paths: LocalPaths) -> Path:
    """Download the pinned broker jars (sha256-checked) unless they are there already; returns their folder."""
    dest = jars_dir(paths)
    try:
        fetch(dest, read_pins(PINS))
    except RuntimeError as exc:
        raise ServiceError(
            f"Kafka {KAFKA_VERSION} jars could not be installed ({exc}); check access to Maven Central and retry"
        ) from exc
    return dest


def java() -> str:
    """The java to run the broker with: $JAVA_HOME's, else the one on PATH."""
    home = os.environ.get("JAVA_HOME")
    if home and (Path(home) / "bin" / "java").is_file():
        return str(Path(home) / "bin" / "java")
    found = shutil.which("java")
    if found is None:
        raise ServiceError(
            "java not found (JAVA_HOME unset, none on PATH): install a Java 17+ runtime, e.g. openjdk-17-jre-headless"
        )
    return found


def cluster_id() -> str:
    """A new cluster ID as Kafka writes them, URL-safe base64 of a random UUID, never starting with "-".

    One in 64 would, and the storage tool takes such an argument for an option and refuses to format.
    """
    while True:
        candidate = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
        if not candidate.startswith("-"):
            return candidate


class Kafka:
    """The broker of one state folder: ``data/kafka``, ``logs/kafka.log``, ``run/kafka.pid``."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.paths = LocalPaths.of(settings)
        self.host, self.port = split_host_port(settings.kafka_bootstrap, env_name("kafka_bootstrap"))
        self.controller_port = settings.kafka_controller_port
        self.data = self.paths.data / "kafka"
        self.config = self.paths.run / "kafka.properties"
        self.process = ManagedProcess(
            "Kafka", self.paths.run / "kafka.pid", self.paths.logs / "kafka.log", str(self.config)
        )

    @property
    def pid(self) -> int | None:
        return self.process.running_pid()

    def check_can_start(self) -> None:
        """Raise unless nothing of this broker runs yet, both its ports are free and it can speak the protocol."""
        protocol, mechanism = self.settings.kafka_security_protocol, self.settings.kafka_sasl_mechanism
        if protocol not in LOCAL_PROTOCOLS or (protocol == "SASL_PLAINTEXT" and not mechanism.startswith("SCRAM-")):
            raise ServiceError(
                f"{env_name('kafka_security_protocol')}={protocol}, {env_name('kafka_sasl_mechanism')}={mechanism}: "
                "the local broker speaks PLAINTEXT, or SASL_PLAINTEXT with a SCRAM user; point "
                f"{env_name('kafka_bootstrap')} at a broker of your own for the others"
            )
        self.process.check_not_running(self.paths.state)
        check_port_free(self.host, self.port, "Kafka broker", env_name("kafka_bootstrap"))
        check_port_free(self.host, self.controller_port, "Kafka controller", env_name("kafka_controller_port"))

    def launch(self) -> int:
        """Start the broker process, formatting its storage on the first start; returns its pid."""
        self.check_can_start()
        dest = jars_dir(self.paths)
        if not all((dest / jar.filename).is_file() for jar in read_pins(PINS)):
            raise ServiceError(f"Kafka {KAFKA_VERSION} is not installed in {dest}: run `cryptolake setup` first")
        jvm = [java(), *JVM_OPTS, f"-Dlog4j2.configurationFile={LOG4J_CONFIG}", "-cp", f"{dest}/*"]
        self._write_config()
        if not (self.data / "meta.properties").exists():
            fresh = ["--config", str(self.config), "--cluster-id", cluster_id(), *self._scram_user()]
            # --standalone: this node alone is the controller quorum, written into the metadata log once.
            format_cmd = ["kafka.tools.StorageTool", "format", *fresh, "--standalone"]
            # In a file java reads its arguments from (the launcher's @file), not on a command line: the Kafka user's
            # password is among them.
            arguments = self.paths.run / "kafka-format.args"
            arguments.touch(mode=0o600)
            arguments.write_text("\n".join(java_quoted(argument) for argument in format_cmd))
            try:
                self.process.run_once([*jvm, f"@{arguments}"], os.environ, 120, "Kafka storage format")
            finally:
                arguments.unlink()
        log.info("starting Kafka %s on %s:%d", KAFKA_VERSION, self.host, self.port)
        return self.process.spawn([*jvm, "kafka.Kafka", str(self.config)], os.environ, self.paths.state)

    def wait_ready(self, timeout: float = 90.0) -> None:
        started = time.monotonic()
        hint = "the log lines below say why (a busy machine may need a longer timeout)"
        self.process.wait_ready(self._ready, timeout, hint)
        log.info("Kafka ready in %.1fs", time.monotonic() - started)

    def start(self, timeout: float = 90.0) -> int:
        pid = self.launch()
        self.wait_ready(timeout)
        return pid

    def stop(self, timeout: float = 30.0) -> None:
        self.process.stop(timeout)

    @property
    def _sasl(self) -> bool:
        return self.settings.kafka_security_protocol == "SASL_PLAINTEXT"

    def _scram_user(self) -> list[str]:
        """The storage tool's arguments that create the settings' Kafka user; it takes them only at the first format."""
        if not self._sasl:
            return []
        user = f"name={self.settings.kafka_sasl_username},password={self.settings.kafka_sasl_password}"
        return ["--add-scram", f"{self.settings.kafka_sasl_mechanism}=[{user}]"]

    def _write_config(self) -> None:
        self.data.mkdir(parents=True, exist_ok=True)
        self.config.parent.mkdir(parents=True, exist_ok=True)
        sasl = ""
        if self._sasl:
            mechanism = self.settings.kafka_sasl_mechanism
            listener = f"listener.name.sasl_plaintext.{mechanism.lower()}.sasl.jaas.config"
            sasl = (
                f"sasl.enabled.mechanisms={mechanism}\n"
                f"sasl.mechanism.inter.broker.protocol={mechanism}\n"
                f"{listener}={java_config(self.settings)['sasl.jaas.config']}"
            )
        text = Template(SERVER_TEMPLATE.read_text()).substitute(
            broker=join_host_port(self.host, self.port),
            controller=join_host_port(self.host, self.controller_port),
            protocol=self.settings.kafka_security_protocol,
            sasl=sasl,
            log_dirs=self.data,
        )
        # The broker's login is the Kafka user's password: readable by this user alone, whatever an older file's mode.
        self.config.touch(mode=0o600)
        self.config.chmod(0o600)
        self.config.write_text(text)

    def _ready(self) -> bool:
        # A TCP probe first: librdkafka would log every refused connection while the JVM boots.
        if not can_connect(self.host, self.port):
            return False
        try:
            metadata = _admin(self.settings).list_topics(timeout=2)
        except KafkaException:
            return False
        return bool(metadata.brokers)


def _admin(settings: Settings) -> AdminClient:
    # log_level 4: warnings and errors only; librdkafka logs routine info (queue purges) to stderr otherwise.
    return AdminClient({**librdkafka_config(settings), "log_level": 4})


def ensure_topic(settings: Settings, partitions: int = 4, timeout: float = 30.0) -> None:
    """Create ``settings.kafka_topic`` with ``partitions`` partitions unless it exists (then it is left as is)."""
    admin = _admin(settings)  # held until the result is in: a collected client cancels its requests
    try:
        create_topic(admin, NewTopic(settings.kafka_topic, partitions, 1), timeout)
    except TimeoutError:
        raise ServiceError(f"creating Kafka topic {settings.kafka_topic} timed out: is the broker up?") from None
    except KafkaException as exc:
        raise ServiceError(
            f"creating Kafka topic {settings.kafka_topic} failed: {exc.args[0]}; is the broker up?"
        ) from exc
