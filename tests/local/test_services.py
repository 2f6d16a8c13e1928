"""Local mode's Kafka and MinIO: install, start, serve, stop, restart, and the errors a user meets."""

from __future__ import annotations

import os
import signal
import socket
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from types import SimpleNamespace

import pytest
from botocore.exceptions import ClientError
from confluent_kafka import Consumer, KafkaError, Producer, TopicPartition
from confluent_kafka.admin import AdminClient

from core.settings import Settings
from cryptolake.local import kafka, minio
from cryptolake.local.kafka import Kafka, ensure_topic
from cryptolake.local.minio import ensure_bucket, root_settings, s3_client
from cryptolake.local.paths import LocalPaths
from cryptolake.local.procs import ServiceError, port_in_use
from cryptolake.local.services import LocalServices, install
from cryptolake.local.supervisor import RestartPolicy, Supervisor
from tests.ingestion.harness import wait_until


def produce(settings: Settings, key: bytes, value: bytes) -> None:
    producer = Producer({"bootstrap.servers": settings.kafka_bootstrap})
    producer.produce(settings.kafka_topic, key=key, value=value)
    assert producer.flush(30) == 0, "record not acknowledged within 30s"


def read_topic(settings: Settings) -> dict[bytes, bytes]:
    """Every record of the topic from the beginning, by key."""
    consumer = Consumer(
        {
            "bootstrap.servers": settings.kafka_bootstrap,
            "group.id": f"test-{uuid.uuid4().hex}",
            "enable.auto.commit": False,
            "enable.partition.eof": True,
        }
    )
    try:
        partitions = consumer.list_topics(settings.kafka_topic, timeout=10).topics[settings.kafka_topic].partitions
        consumer.assign([TopicPartition(settings.kafka_topic, p, 0) for p in partitions])
        records: dict[bytes, bytes] = {}
        at_end: set[int] = set()
        deadline = time.monotonic() + 30
        while len(at_end) < len(partitions) and time.monotonic() < deadline:
            message = consumer.poll(1.0)
            if message is None:
                continue
            error = message.error()
            if error is not None:
                assert error.code() == KafkaError._PARTITION_EOF, error
                partition = message.partition()
                assert partition is not None
                at_end.add(partition)
            else:
                records[message.key() or b""] = message.value() or b""
        assert len(at_end) == len(partitions), "did not reach the end of every partition within 30s"
        return records
    finally:
        consumer.close()


def gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    return False


def assert_stopped(settings: Settings, pids: dict[str, int]) -> None:
    assert pids, "no pids to check"
    assert all(gone(pid) for pid in pids.values()), pids
    assert not list(LocalPaths.of(settings).run.glob("*.pid"))
    assert LocalServices(settings).running() == {}


@pytest.fixture
def stack(make_settings: Callable[[], Settings], installed: None) -> Iterator[LocalServices]:
    """A private stack, not started; stopped after the test whatever it did."""
    services = LocalServices(make_settings())
    yield services
    services.stop()


@pytest.mark.services
def test_record_goes_through_the_broker(services: Settings) -> None:
    key = uuid.uuid4().bytes
    produce(services, key, b'{"p": "42000.5"}')
    assert read_topic(services)[key] == b'{"p": "42000.5"}'


@pytest.mark.services
def test_topic_and_bucket_are_ensured_idempotently(services: Settings) -> None:
    ensure_topic(services, partitions=4)
    ensure_bucket(services)
    topics = AdminClient({"bootstrap.servers": services.kafka_bootstrap}).list_topics(timeout=10).topics
    assert len(topics[services.kafka_topic].partitions) == 4
    buckets = [b["Name"] for b in s3_client(root_settings(services)).list_buckets()["Buckets"]]
    assert services.lake_bucket in buckets


def _error_code(call: Callable[[], object]) -> str | None:
    """The S3 error code ``call`` fails with; None if it succeeds."""
    try:
        call()
    except ClientError as exc:
        return str(exc.response["Error"]["Code"])
    return None


@pytest.mark.services
def test_the_lake_key_is_refused_outside_the_lake_bucket(services: Settings) -> None:
    root = s3_client(root_settings(services))
    other = f"other-{uuid.uuid4().hex[:8]}"
    root.create_bucket(Bucket=other)
    root.put_object(Bucket=other, Key="kept", Body=b"root's")
    ensure_bucket(services)  # again: the lake user's secret set again, its policy attached once
    lake = s3_client(services)
    lake.put_object(Bucket=services.lake_bucket, Key="probe", Body=b"lake's")
    assert lake.get_object(Bucket=services.lake_bucket, Key="probe")["Body"].read() == b"lake's"
    listing = lake.list_objects_v2(Bucket=services.lake_bucket, Prefix="probe")
    assert [o["Key"] for o in listing["Contents"]] == ["probe"]
    lake.delete_object(Bucket=services.lake_bucket, Key="probe")
    refused: dict[str, Callable[[], object]] = {
        "read": lambda: lake.get_object(Bucket=other, Key="kept"),
        "write": lambda: lake.put_object(Bucket=other, Key="kept", Body=b"lake's"),
        "delete": lambda: lake.delete_object(Bucket=other, Key="kept"),
        "list": lambda: lake.list_objects_v2(Bucket=other),
        "create a bucket": lambda: lake.create_bucket(Bucket=f"{other}-new"),
    }
    assert {what: _error_code(call) for what, call in refused.items()} == dict.fromkeys(refused, "AccessDenied")
    # MinIO lists a user the buckets it may use, rather than refusing the listing.
    listed = [b["Name"] for b in lake.list_buckets()["Buckets"]]
    assert services.lake_bucket in listed and other not in listed
    assert root.get_object(Bucket=other, Key="kept")["Body"].read() == b"root's"


@pytest.mark.services
def test_minios_root_password_is_its_owners_alone_and_on_no_command_line(services: Settings) -> None:
    password = LocalPaths.of(services).state / "minio-root-password"
    assert password.stat().st_mode & 0o777 == 0o600
    secret = password.read_text()
    assert secret not in services.to_env().values()
    pid = LocalServices(services).minio.pid
    assert pid is not None
    assert secret.encode() not in Path(f"/proc/{pid}/cmdline").read_bytes()


@pytest.mark.services
def test_object_put_then_get(services: Settings) -> None:
    s3 = s3_client(services)
    s3.put_object(Bucket=services.lake_bucket, Key="test/hello.txt", Body=b"hello lake")
    assert s3.get_object(Bucket=services.lake_bucket, Key="test/hello.txt")["Body"].read() == b"hello lake"


@pytest.mark.services
def test_second_start_on_same_state_is_refused(services: Settings) -> None:
    before = LocalServices(services).running()
    with pytest.raises(ServiceError, match="already runs"):
        LocalServices(services).start()
    assert LocalServices(services).running() == before
    assert set(before) == {"kafka", "minio"}


def test_install_twice_downloads_and_builds_nothing(installed: None) -> None:
    paths = LocalPaths.of(Settings())
    files = [*kafka.jars_dir(paths).iterdir(), *paths.spark_jars.iterdir(), minio.binary(paths)]
    before = {f: f.stat().st_mtime_ns for f in files}
    started = time.monotonic()
    install(Settings())
    assert time.monotonic() - started < 10
    assert {f: f.stat().st_mtime_ns for f in files} == before


@pytest.mark.parametrize(
    ("field", "env_var"),
    [
        ("kafka_bootstrap", "CRYPTOLAKE_KAFKA_BOOTSTRAP"),
        ("kafka_controller_port", "CRYPTOLAKE_KAFKA_CONTROLLER_PORT"),
        ("s3_endpoint", "CRYPTOLAKE_S3_ENDPOINT"),
        ("minio_console_port", "CRYPTOLAKE_MINIO_CONSOLE_PORT"),
    ],
)
def test_busy_port_is_named_with_its_setting(make_settings: Callable[[], Settings], field: str, env_var: str) -> None:
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        port = holder.getsockname()[1]
        value = {"kafka_bootstrap": f"127.0.0.1:{port}", "s3_endpoint": f"http://127.0.0.1:{port}"}.get(field, port)
        settings = make_settings().with_(**{field: value})
        with pytest.raises(ServiceError) as caught:
            LocalServices(settings).start()
    assert f"port {port} " in str(caught.value)
    assert env_var in str(caught.value)
    assert "\n" not in str(caught.value)
    assert LocalServices(settings).running() == {}


@pytest.mark.services
def test_stop_leaves_no_process_behind(stack: LocalServices) -> None:
    stack.start()
    pids = stack.pids()
    assert set(pids) == {"kafka", "minio"}
    assert stack.running() == pids
    # As `cryptolake down` does: a fresh object that knows the services by their PID files only.
    LocalServices(stack.settings).stop()
    assert stack.running() == {}
    stack.stop()  # the starter reaps its children
    assert_stopped(stack.settings, pids)
    assert not port_in_use("127.0.0.1", int(stack.settings.kafka_bootstrap.rsplit(":", 1)[1]))


@pytest.mark.services
def test_restart_keeps_records_and_objects(stack: LocalServices) -> None:
    settings = stack.settings
    with stack:
        produce(settings, b"kept", b"across restarts")
        s3_client(settings).put_object(Bucket=settings.lake_bucket, Key="kept.txt", Body=b"kept")
    with stack:
        assert read_topic(settings)[b"kept"] == b"across restarts"
        assert s3_client(settings).get_object(Bucket=settings.lake_bucket, Key="kept.txt")["Body"].read() == b"kept"
        pids = stack.pids()
    assert_stopped(settings, pids)


@pytest.mark.services
def test_kafka_and_minio_killed_are_started_again_on_their_data_and_ports(stack: LocalServices) -> None:
    settings = stack.settings
    lines: list[str] = []
    # As `up` supervises them, without a delay.
    supervisor = Supervisor(RestartPolicy(budget=1, window=3600.0, first_delay=0.0, max_delay=0.0), report=lines.append)
    with stack:
        produce(settings, b"kept", b"across a crash")
        s3_client(settings).put_object(Bucket=settings.lake_bucket, Key="kept.txt", Body=b"kept")
        for service in (stack.kafka, stack.minio):
            supervisor.watch(service.process, service.launch)
        killed = stack.running()
        for pid in killed.values():
            os.killpg(pid, signal.SIGKILL)
        wait_until(lambda: stack.running() == {}, "Kafka and MinIO gone after SIGKILL", timeout=30)
        assert sorted(supervisor.check()) == ["Kafka", "MinIO"]
        stack.kafka.wait_ready(120)
        stack.minio.wait_ready(60)
        assert set(stack.running()) == {"kafka", "minio"}
        assert not set(stack.running().values()) & set(killed.values())
        assert read_topic(settings)[b"kept"] == b"across a crash"
        assert s3_client(settings).get_object(Bucket=settings.lake_bucket, Key="kept.txt")["Body"].read() == b"kept"
    # Each with its reason, and whatever error line its log ended on.
    assert [line.split(" ", 1)[0] for line in sorted(lines)] == ["Kafka", "MinIO"]
    assert all(line.split(" ", 1)[1].startswith("was killed by SIGKILL") for line in lines), lines
    assert all(line.endswith("; restart 1 of 1 within 1 h, in 0 s") for line in lines), lines


@pytest.mark.services
def test_a_broker_formats_and_starts_whatever_its_random_cluster_id(
    stack: LocalServices, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The first draw encodes to "-AAA...", which the storage tool took for an option: one fresh start in 64 failed.
    draws = iter([uuid.UUID(bytes=b"\xf8" + bytes(15)), uuid.uuid4()])
    # Only kafka.py's draws: patching the uuid module itself would hand them to any thread of the session (botocore
    # draws a uuid4 per request).
    monkeypatch.setattr(kafka, "uuid", SimpleNamespace(uuid4=lambda: next(draws)))
    broker = Kafka(stack.settings)
    try:
        broker.start()  # formats the storage, then waits until the broker serves
    finally:
        broker.stop()
    assert next(draws, None) is None, "the broker did not draw again after the draw that encodes to '-AAA...'"
    assert "cluster.id=-" not in (broker.data / "meta.properties").read_text()


@pytest.mark.services
def test_readiness_timeout_stops_the_broker_and_shows_its_log(stack: LocalServices) -> None:
    broker = Kafka(stack.settings)
    with pytest.raises(ServiceError, match="not ready within") as caught:
        broker.start(timeout=0.1)
    assert "kafka.log" in str(caught.value)
    assert "starting Kafka" in str(caught.value)  # the log tail
    assert broker.pid is None
    assert not broker.process.pidfile.exists()


def test_missing_java_is_reported(
    make_settings: Callable[[], Settings], installed: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PATH", "/nonexistent")
    monkeypatch.delenv("JAVA_HOME", raising=False)
    with pytest.raises(ServiceError, match="java not found"):
        Kafka(make_settings()).launch()


def test_missing_go_is_reported(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", "/nonexistent")
    monkeypatch.delenv("GOROOT", raising=False)
    monkeypatch.setattr(minio, "GO_FALLBACKS", ())
    with pytest.raises(ServiceError, match="go not found"):
        minio.install_minio(LocalPaths(state=tmp_path, cache=tmp_path))


def test_failed_build_is_reported_with_its_log(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GOPROXY", "off")  # the module fetch fails at once, offline
    monkeypatch.setattr(minio, "MINIO_VERSION", "v0.0.0-20000101000000-000000000000")
    with pytest.raises(ServiceError, match="building MinIO failed") as caught:
        minio.install_minio(LocalPaths(state=tmp_path, cache=tmp_path))
    assert "minio-build.log" in str(caught.value)
    assert not minio.binary(LocalPaths(state=tmp_path, cache=tmp_path)).exists()


def test_failed_download_is_reported(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    pins = tmp_path / "pins.txt"
    pins.write_text(f"org.jspecify:jspecify:1.0.0 {'0' * 64} 1\n")  # a real (small) jar, a wrong hash
    monkeypatch.setattr(kafka, "PINS", pins)
    with pytest.raises(ServiceError, match="could not be installed"):
        kafka.install_kafka(LocalPaths(state=tmp_path, cache=tmp_path))
