"""Local mode: the venue, the ingestor and the three layers as local processes, with a progress display.

Every child runs in a session of its own with its output in ``<state>/logs/<name>.log`` and its PID in
``<state>/run/<name>.pid``, so ``cryptolake down`` from another shell finds them, and Ctrl-C stops them in order:
first what feeds Kafka, then the layers, each given time to finish its batch. A child that exits is restarted, with
Kafka and MinIO if given (:mod:`cryptolake.local.supervisor`).
"""

from __future__ import annotations

import contextlib
import functools
import os
import signal
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

from core.settings import Settings
from core.venues import FEEDS
from cryptolake import lake
from cryptolake.local.lock import StateLock
from cryptolake.local.paths import REPO_ROOT, LocalPaths
from cryptolake.local.procs import LOOPBACK, ManagedProcess, free_port
from cryptolake.local.services import LocalServices
from cryptolake.local.supervisor import RestartPolicy, Supervisor
from cryptolake.status import RECENT_BARS, Progress, freshest_bars
from cryptolake.venue import recordings, synthetic
from cryptolake.venue.replay import ingestor_settings, served_settings
from ingestion.metrics import metric_total

LAYERS = ("bronze", "silver", "gold")
ONE_JVM = "layers"  # the process running all three layers in one Spark driver
JOB_STOP_SECONDS = 60.0


def service_ports(settings: Settings) -> set[int]:
    """The ports the settings give Kafka and MinIO. `up` picks the pipeline's ports before it starts them, so a free
    port could be one of theirs (a test's venue once took MinIO's console port): the pipeline's must not be."""
    addresses = [urlsplit(f"//{address}") for address in settings.kafka_bootstrap.split(",")]
    ports = {url.port for url in [*addresses, urlsplit(settings.s3_endpoint)] if url.port is not None}
    return ports | {settings.kafka_controller_port, settings.minio_console_port}


@dataclass(frozen=True)
class Source:
    """Where the ingestor's frames come from: the synthetic venues, the live ones, or recordings replayed."""

    kind: str = "synthetic"  # synthetic | live | replay
    recordings: tuple[Path, ...] = ()
    speed: str = "1"  # N times real time, or "max"
    rate: float = 200.0  # synthetic: trades per second, all venues together
    venues: tuple[str, ...] = synthetic.DEMO_VENUES  # synthetic: each served in its own protocol, on the same symbols
    count: int | None = None  # synthetic: stop after this many trades
    seed: int = 1
    start_ms: int | None = None  # synthetic: event time of the first trade (default: now)
    cut: tuple[int, int] | None = None  # replay: cut the ingestor once after N frames, playing the next M to nobody

    def venue_args(self, settings: Settings) -> list[str]:
        if self.kind == "replay":
            # Absolute: the venue runs in another folder than the command that names the recordings.
            cut = ["--cut", *map(str, self.cut)] if self.cut else []
            return ["--recording", *(str(path.resolve()) for path in self.recordings), "--speed", self.speed, *cut]
        args = ["--symbols", ",".join(settings.symbols), "--rate", str(self.rate), "--seed", str(self.seed)]
        args += ["--venues", ",".join(self.venues), "--speed", self.speed]
        if self.count is not None:
            args += ["--count", str(self.count)]
        if self.start_ms is not None:
            args += ["--start-ms", str(self.start_ms)]
        return args


@dataclass
class Pipeline:
    """The venue (unless live), the ingestor and the three layer jobs, on services that already run.

    ``source`` None runs the layers alone, on what Kafka already holds. The layers share one Spark driver, which needs
    half the memory of three and drains a backlog faster on a small machine (``make bench``); ``jvm_per_layer`` gives
    each its own, as the Spark Operator does. ``restart_policy`` None takes the settings'; ``clock`` times the
    restarts.
    """

    settings: Settings
    source: Source | None = field(default_factory=Source)
    jvm_per_layer: bool = False
    restart_policy: RestartPolicy | None = None
    clock: Callable[[], float] = time.monotonic

    def __post_init__(self) -> None:
        self.paths = LocalPaths.of(self.settings)
        taken = service_ports(self.settings)
        venue_port = free_port(avoid=taken)
        overrides: dict[str, object] = {
            "local_home": str(self.paths.state),  # absolute: the children run in other folders
            "spark_master": self.settings.spark_master or "local[2]",
            "spark_jars_dir": self.settings.spark_jars_dir or str(self.paths.spark_jars),
            "ingestor_http_port": free_port(avoid=taken),
            "ingestor_http_host": LOOPBACK,
        }
        self.settings = self.settings.with_(**overrides)
        venue_url = f"ws://127.0.0.1:{venue_port}"
        if self.source is not None and self.source.kind == "synthetic":
            # Every venue served trades the settings' symbols.
            served = {FEEDS[venue]: self.settings.symbols for venue in self.source.venues}
            self.settings = served_settings(self.settings, served, venue_url)
        if self.source is not None and self.source.kind == "replay":
            # The recordings' venues and symbols, every venue served by the local one.
            loaded = [recordings.load(path) for path in self.source.recordings]
            self.settings = ingestor_settings(self.settings, loaded, venue_url)
        self.venue_port = venue_port
        self.children: dict[str, ManagedProcess] = {}
        self.layer_processes = LAYERS if self.jvm_per_layer else (ONE_JVM,)
        self.progress = Progress()
        self._log_offsets: dict[str, int] = {}
        self._bars: tuple[int, list[str]] | None = None  # gold's bar count when last read, and the lines read
        self._commands = self._command_lines()

    def _command_lines(self) -> dict[str, list[str]]:
        commands = {}
        if self.source is not None and self.source.kind != "live":
            venue = [sys.executable, "-m", "cryptolake.venue.server", "--port", str(self.venue_port)]
            commands["venue"] = venue + self.source.venue_args(self.settings)
        if self.source is not None:
            commands["ingestor"] = [sys.executable, "-m", "ingestion"]
        for name in self.layer_processes:
            commands[name] = [sys.executable, "-m", "jobs.all_layers" if name == ONE_JVM else f"jobs.{name}"]
        return commands

    def process(self, name: str) -> ManagedProcess:
        return ManagedProcess(name, self.paths.run / f"{name}.pid", self.paths.logs / f"{name}.log", str(REPO_ROOT))

    def layer_pid(self, layer: str) -> int | None:
        """The pid of the process running ``layer``, on its own or with the other layers, if one runs."""
        for name in (layer, ONE_JVM):
            pid = self.process(name).running_pid()
            if pid is not None:
                return pid
        return None

    def start(self, services: LocalServices | None = None) -> None:
        """Start the children; from now on :meth:`restart_failed` restarts them, and Kafka and MinIO of
        ``services`` (started already) too."""
        for name in self._commands:
            self.process(name).check_not_running(self.paths.state)
        self.follow_logs()
        self.supervisor = Supervisor(self.restart_policy or RestartPolicy.of(self.settings), self.clock)
        for name in self._commands:
            # Watched from before its spawn: an error it logs at once is this run's.
            self.children[name] = self.process(name)
            self.supervisor.watch(self.children[name], functools.partial(self._spawn, name))
            self._spawn(name)
        if services is not None:
            for service in (services.kafka, services.minio):
                self.supervisor.watch(service.process, service.launch)

    def follow_logs(self) -> None:
        """Count in :attr:`progress` only what the children log from now on: the logs keep earlier runs' lines."""
        for name in self._commands:
            with contextlib.suppress(FileNotFoundError):
                self._log_offsets[name] = self.process(name).log.stat().st_size

    def _spawn(self, name: str) -> None:
        process = self.children.get(name) or self.process(name)
        # In the state folder, so that what Spark leaves where it runs (artifacts/) stays out of the repository.
        self.paths.work.mkdir(parents=True, exist_ok=True)
        process.spawn(self._commands[name], self.child_env(), self.paths.work)
        self.children[name] = process

    def child_env(self) -> dict[str, str]:
        # The repository first on the path, as when the children ran in it: its code, whatever the working folder.
        path = os.pathsep.join(filter(None, (str(REPO_ROOT), os.environ.get("PYTHONPATH"))))
        # SPARK_LOCAL_IP: the drivers' UI (and its /metrics) and RPC listen on loopback only, not on every interface.
        return {
            **os.environ,
            **self.settings.to_env(),
            "PYTHONPATH": path,
            "PYTHONUNBUFFERED": "1",
            "SPARK_LOCAL_IP": LOOPBACK,
        }

    @property
    def restarts(self) -> dict[str, int]:
        """How many times each child has been restarted since :meth:`start`."""
        return self.supervisor.restarts

    def restart_failed(self) -> list[str]:
        """Note the children that exited and start again those whose delay has passed, as the Spark Operator's
        restart policy does in Kubernetes; the names started. Without waiting: call it in a loop.

        Raises :class:`ServiceError` with the reason on a failure a restart cannot fix, or once a child has used up its
        restarts within the window. Then rotates the children's logs (:meth:`rotate_logs`).
        """
        started = self.supervisor.check()
        self.rotate_logs()
        return started

    def rotate_logs(self) -> None:
        """Rotate the children's logs past ``log_max_mib``, the lines they hold folded into :attr:`progress` first."""
        self.poll_progress()
        for name in self.supervisor.rotate_logs(self.settings.log_max_mib * 2**20, self.settings.log_keep):
            self._log_offsets[name] = 0

    def stop(self) -> None:
        """Stop the feeders first, then let each layer finish its batch before its process group is killed.

        Children are found by their PID files too, so this also stops what an ``up`` that died left behind.
        """
        for name in ("venue", "ingestor"):
            self._child(name).stop(timeout=20.0)
        layers = [self._child(name) for name in (*LAYERS, ONE_JVM)]
        for process in layers:
            pid = process.running_pid()
            if pid is not None:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGTERM)  # the driver alone: it stops its queries, then its JVM
        deadline = time.monotonic() + JOB_STOP_SECONDS
        while any(p.running_pid() is not None for p in layers) and time.monotonic() < deadline:
            time.sleep(0.5)
        for process in layers:
            process.stop()  # the JVM, and anything else of the group still there
        self.children.clear()

    def _child(self, name: str) -> ManagedProcess:
        # Our own Popen where we have it, so that the child is reaped rather than left a zombie.
        return self.children.get(name) or self.process(name)

    def failed(self) -> list[str]:
        """Children that have exited although nobody asked them to."""
        return [name for name, process in self.children.items() if process.running_pid() is None]

    def poll_progress(self) -> None:
        """Fold the lines the layers and the ingestor logged since the last call into :attr:`progress`."""
        for name in self._commands.keys() - {"venue"}:  # the venue logs nothing the status shows
            log_path = self.process(name).log
            offset = self._log_offsets.get(name, 0)
            with contextlib.suppress(FileNotFoundError), log_path.open("rb") as log:
                log.seek(offset)
                chunk = log.read()
                complete = chunk[: chunk.rfind(b"\n") + 1]
                self._log_offsets[name] = offset + len(complete)
                for line in complete.splitlines():
                    self.progress.fold(line)

    def ingested_frames(self) -> int:
        """Frames the ingestor has put into Kafka, from its /metrics."""
        return int(metric_total(self.settings.ingestor_http_port, "frames_total"))

    def status_line(self, now: float | None = None) -> str:
        """The counts of this run, then a line per symbol's freshest bar and per venue the ingestor cannot reach."""
        lines = self.progress.lines(self.ingested_frames(), self.latest_bars(), time.time() if now is None else now)
        return "\n".join(lines)

    def latest_bars(self) -> list[str]:
        """Each symbol's freshest gold bar, from gold's newest days; read again only once gold has written bars since
        the last read."""
        written = self.progress.layers["gold"].rows
        if self._bars is None or self._bars[0] != written:
            try:
                bars = lake.read_newest_bars(self.settings, count=RECENT_BARS)
            except lake.READ_ERRORS:
                return ["gold: not readable yet"]
            self._bars = (written, freshest_bars(bars) if bars.num_rows else ["gold: no bar yet"])
        return self._bars[1]


def up_lock(paths: LocalPaths) -> StateLock:
    """The lock a running ``cryptolake up`` holds on its state folder, with its pid."""
    return StateLock(paths.run / "up.lock", paths.state)


def down(settings: Settings, timeout: float = 120.0) -> bool:
    """Ask a running ``cryptolake up`` to stop, as Ctrl-C would; True once it has gone."""
    # The lock's holder, not a PID file: after a crash, a file's pid may belong to another program by now.
    pid = up_lock(LocalPaths.of(settings)).holder()
    if pid is None:
        return False
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        return False
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return True
        time.sleep(0.5)
    return False
