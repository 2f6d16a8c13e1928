"""Fixtures shared by every test (settings for private local stacks, one Kafka + MinIO for the session) and the
markers of `make test-fast`."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from core.settings import Settings
from cryptolake.local.paths import LocalPaths
from cryptolake.local.procs import free_port
from cryptolake.local.services import LocalServices, install

pytest_plugins = ("tests.lakes",)  # local_lake, for the lake readers' tests

# `make test-fast` runs the tests of these folders only, by their marker: no services, one local SparkSession.
FOLDER_MARKERS = {"unit": "unit", "bench": "unit", "jobs": "transform"}


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    tests = Path(__file__).parent
    for item in items:
        folder = item.path.relative_to(tests).parts[0]
        if folder in FOLDER_MARKERS:
            item.add_marker(FOLDER_MARKERS[folder])


def stack_settings(home: Path) -> Settings:
    """Defaults, but state in ``home`` and every port a free one: test runs and a running demo never collide."""
    settings = Settings(
        kafka_bootstrap=f"127.0.0.1:{free_port()}",
        kafka_controller_port=free_port(),
        s3_endpoint=f"http://127.0.0.1:{free_port()}",
        minio_console_port=free_port(),
        local_home=str(home),
    )
    return settings.with_(spark_jars_dir=str(LocalPaths.of(settings).spark_jars))


@pytest.fixture(scope="session")
def installed() -> None:
    """The shared cache of tools and jars, installed once (seconds when it is already there)."""
    install(Settings())


@pytest.fixture
def make_settings(tmp_path_factory: pytest.TempPathFactory) -> Callable[[], Settings]:
    """Settings of a fresh private stack (own state folder, own free ports), not started."""
    return lambda: stack_settings(tmp_path_factory.mktemp("stack"))


@pytest.fixture(scope="session")
def services(installed: None, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Settings]:
    """Settings of a running Kafka + MinIO of this session, with the lake's bucket and topic created."""
    settings = stack_settings(tmp_path_factory.mktemp("services"))
    with LocalServices(settings):
        yield settings
