"""The benchmark's own local stack: Kafka and MinIO on free ports, and the pipeline's layers run on them.

Each scenario run gets a topic or bucket of its own and a state folder of its own (``runs/<name>``, holding the
layers' logs), so runs never read each other's data or logs. Everything lives under
``.cryptolake/bench/<time>-<pid>/``; the services' data is deleted at the end, the logs are kept.
"""

from __future__ import annotations

import contextlib
import os
import shlex
import shutil
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from core.settings import Settings, env_name
from cryptolake.local.kafka import ensure_topic
from cryptolake.local.minio import ensure_bucket
from cryptolake.local.paths import CACHE, LocalPaths
from cryptolake.local.procs import free_port
from cryptolake.local.services import LocalServices, install
from cryptolake.runner import Pipeline

TOPIC_PARTITIONS = 4  # as `cryptolake up` creates it


@dataclass(frozen=True)
class Tuning:
    """The knobs a benchmark run varies: settings (also read from CRYPTOLAKE_* env), extra Spark conf, JVMs."""

    settings: dict[str, str] = field(default_factory=dict)  # field name -> value as env text
    spark_conf: dict[str, str] = field(default_factory=dict)
    jvm_per_layer: bool = False

    def apply(self, settings: Settings) -> Settings:
        environ = {**settings.to_env(), **{env_name(k): v for k, v in self.settings.items()}}
        return Settings.from_env(environ)


def bench_home() -> Path:
    return CACHE / "bench" / f"{time.strftime('%Y%m%d-%H%M%S')}-{os.getpid()}"


class Stack:
    """Kafka and MinIO for one benchmark, on free ports, with state in ``home``."""

    def __init__(self, home: Path, tuning: Tuning) -> None:
        self.home = home
        self.tuning = tuning
        base = tuning.apply(Settings.from_env())
        self.settings = base.with_(
            kafka_bootstrap=f"127.0.0.1:{free_port()}",
            kafka_controller_port=free_port(),
            s3_endpoint=f"http://127.0.0.1:{free_port()}",
            minio_console_port=free_port(),
            local_home=str(home),
        )
        self.services = LocalServices(self.settings, topic_partitions=TOPIC_PARTITIONS)

    def __enter__(self) -> Stack:
        install(self.settings)
        self.services.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self.services.stop()
        shutil.rmtree(LocalPaths.of(self.settings).data, ignore_errors=True)

    def run_settings(self, name: str, *, topic: str | None = None) -> Settings:
        """Settings of one run: its own bucket, its own topic unless given one, its own state folder for logs."""
        settings = self.settings.with_(
            kafka_topic=topic or f"bench-{name}",
            lake_bucket=f"bench-{name}",
            local_home=str(self.home / "runs" / name),
            spark_jars_dir=str(LocalPaths.of(self.settings).spark_jars),
        )
        ensure_topic(settings, TOPIC_PARTITIONS)
        ensure_bucket(settings)
        return settings

    def pids(self) -> dict[str, int]:
        return self.services.running()


@contextlib.contextmanager
def pipeline(settings: Settings, tuning: Tuning) -> Iterator[Pipeline]:
    """The layers on what Kafka holds, in one JVM or one each as ``cryptolake up`` runs them; stopped on the way out."""
    running = Pipeline(settings, source=None, jvm_per_layer=tuning.jvm_per_layer)
    with _submit_args(tuning.spark_conf):  # for the whole run: a restarted layer gets the same conf
        running.start()
        try:
            yield running
        finally:
            running.stop()


def layer_pids(running: Pipeline) -> dict[str, int]:
    found = {name: running.process(name).running_pid() for name in running.layer_processes}
    return {name: pid for name, pid in found.items() if pid is not None}


@contextlib.contextmanager
def _submit_args(conf: Mapping[str, str]) -> Iterator[None]:
    # Spark conf that no setting spells reaches the jobs' JVMs through PySpark's launcher, from the environment the
    # runner hands its children.
    if not conf:
        yield
        return
    args = " ".join(f"--conf {shlex.quote(f'{k}={v}')}" for k, v in conf.items())
    saved = os.environ.get("PYSPARK_SUBMIT_ARGS")
    os.environ["PYSPARK_SUBMIT_ARGS"] = f"{args} pyspark-shell"
    try:
        yield
    finally:
        if saved is None:
            del os.environ["PYSPARK_SUBMIT_ARGS"]
        else:
            os.environ["PYSPARK_SUBMIT_ARGS"] = saved


def wait_on(running: Pipeline, done: Callable[[], bool], limit_s: float, poll_s: float) -> bool:
    """Poll ``done`` every ``poll_s`` for up to ``limit_s``, restarting the layers that fail meanwhile; whether it
    held."""
    until = time.time() + limit_s
    while time.time() < until:
        time.sleep(poll_s)  # first: a layer checked in its first instants can pass for dead
        running.restart_failed()
        if done():
            return True
    return False
