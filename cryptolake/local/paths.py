"""Where local mode keeps things, all under the git-ignored ``.cryptolake/`` of the repository.

Two roots: the cache (tools and jars, installed once and shared by every run and test) and the state (service data,
logs, PID files), which ``CRYPTOLAKE_LOCAL_HOME`` moves, so tests run on stacks of their own.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from core.settings import Settings

REPO_ROOT = Path(__file__).resolve().parents[2]
CACHE = REPO_ROOT / ".cryptolake"


@dataclass(frozen=True)
class LocalPaths:
    state: Path
    cache: Path = CACHE

    @classmethod
    def of(cls, settings: Settings) -> LocalPaths:
        state = Path(settings.local_home) if settings.local_home else CACHE / "local"
        return cls(state.resolve())

    @property
    def tools(self) -> Path:
        """Binaries and jars installed once: MinIO, helm, the Kafka broker."""
        return self.cache / "tools"

    @property
    def spark_jars(self) -> Path:
        return self.cache / "jars" / "spark"

    @property
    def data(self) -> Path:
        return self.state / "data"

    @property
    def logs(self) -> Path:
        return self.state / "logs"

    @property
    def run(self) -> Path:
        """PID files of a running `cryptolake up`."""
        return self.state / "run"

    @property
    def work(self) -> Path:
        """Working folder of `cryptolake up`'s children: Spark layers leave files where they run (``artifacts/``)."""
        return self.state / "work"
