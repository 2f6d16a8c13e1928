"""Fixtures shared by every test: settings for private local stacks, and one Kafka + MinIO for the session."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from core.settings import Settings
from cryptolake.local.paths import LocalPaths
from cryptolake.local.procs import free_port
from cryptolake.local.services import LocalServices, install


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
