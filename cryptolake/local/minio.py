"""The object store of local mode: a MinIO server built from a pinned module version with ``go install``.

As in the cluster, the layers and readers use the lake user (``CRYPTOLAKE_S3_ACCESS_KEY``), allowed the lake bucket
only; MinIO's root keys stay with this module: the root password is made at random in the state folder, readable by
its owner alone, and handed to MinIO by its environment."""

from __future__ import annotations

import json
import logging
import os
import secrets
import shutil
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import boto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError
from minio import MinioAdmin
from minio.credentials.providers import StaticProvider
from minio.error import MinioAdminException
from urllib3.exceptions import HTTPError

from core.settings import Settings, env_name
from cryptolake.local.paths import REPO_ROOT, LocalPaths
from cryptolake.local.procs import ManagedProcess, ServiceError, check_port_free, join_host_port, split_host_port

MINIO_MODULE = "github.com/minio/minio"
MINIO_VERSION = "v0.0.0-20260212201848-7aac2a2c5b7c"
# Where Go lands when it is installed but not on PATH (the official tarball's place).
GO_FALLBACKS = (Path("/usr/local/go/bin/go"),)
ROOT_USER = "cryptolake-root"
# The cluster's lake policy too (charts/minio): BUCKET stands for the bucket.
LAKE_POLICY = REPO_ROOT / "charts" / "minio" / "files" / "lake-policy.json"
BUILD_TIMEOUT = 1800.0

log = logging.getLogger(__name__)
# Readiness probes go straight to loopback, whatever http_proxy the environment sets.
_NO_PROXY = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def binary(paths: LocalPaths) -> Path:
    """The MinIO executable; its folder names the pinned commit, so a version bump builds anew."""
    return paths.tools / f"minio-{MINIO_VERSION.rsplit('-', 1)[-1]}" / "minio"


def go() -> str:
    found = shutil.which("go")
    if found is not None:
        return found
    goroot = os.environ.get("GOROOT")
    candidates = [Path(goroot) / "bin" / "go"] if goroot else []
    for candidate in [*candidates, *GO_FALLBACKS]:
        if candidate.is_file():
            return str(candidate)
    raise ServiceError("go not found (none on PATH, GOROOT or /usr/local/go): install Go 1.24+ to build MinIO")


def install_minio(paths: LocalPaths) -> Path:
    """Build MinIO with ``go install`` unless the binary of the pinned version is there already; returns it."""
    target = binary(paths)
    if target.is_file():
        return target
    # Build into a side folder and rename, so an interrupted build never passes for an installed one.
    staging = target.parent.with_name(target.parent.name + ".part")
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    build_log = paths.tools / "minio-build.log"
    log.info("building MinIO %s with go install (a few minutes the first time)", MINIO_VERSION)
    with build_log.open("wb") as out:
        try:
            done = subprocess.run(
                [go(), "install", f"{MINIO_MODULE}@{MINIO_VERSION}"],
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                env={**os.environ, "GOBIN": str(staging)},
                cwd=paths.tools,
                timeout=BUILD_TIMEOUT,
            )
        except subprocess.TimeoutExpired:
            raise ServiceError(f"building MinIO took over {BUILD_TIMEOUT:.0f}s; retry setup", build_log) from None
    if done.returncode != 0 or not (staging / "minio").is_file():
        raise ServiceError(
            f"building MinIO failed (go exit code {done.returncode}): check access to the Go module proxy and retry",
            build_log,
        )
    shutil.rmtree(target.parent, ignore_errors=True)
    staging.rename(target.parent)
    return target


class MinIO:
    """The server of one state folder: ``data/minio``, ``logs/minio.log``, ``run/minio.pid``."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.paths = LocalPaths.of(settings)
        endpoint = urlsplit(settings.s3_endpoint)
        if endpoint.scheme != "http" or endpoint.port is None:
            raise ServiceError(
                f"{env_name('s3_endpoint')}={settings.s3_endpoint!r}: local MinIO serves plain http on an explicit "
                "port; use e.g. http://127.0.0.1:9000"
            )
        self.host, self.port = split_host_port(endpoint.netloc, env_name("s3_endpoint"))
        self.console_port = settings.minio_console_port
        self.data = self.paths.data / "minio"
        self.process = ManagedProcess(
            "MinIO", self.paths.run / "minio.pid", self.paths.logs / "minio.log", str(self.data)
        )

    @property
    def pid(self) -> int | None:
        return self.process.running_pid()

    def check_can_start(self) -> None:
        """Raise unless nothing of this server runs yet, its ports are free and its credentials are acceptable."""
        self.process.check_not_running(self.paths.state)
        check_port_free(self.host, self.port, "MinIO S3 API", env_name("s3_endpoint"))
        check_port_free(self.host, self.console_port, "MinIO console", env_name("minio_console_port"))
        # MinIO's own limits on a user's keys, checked here to fail with the setting's name instead of at its setup.
        if len(self.settings.s3_access_key) < 3 or len(self.settings.s3_secret_key) < 8:
            raise ServiceError(
                f"MinIO needs {env_name('s3_access_key')} of 3+ and {env_name('s3_secret_key')} of 8+ characters"
            )
        if self.settings.s3_access_key == ROOT_USER:
            raise ServiceError(f"{env_name('s3_access_key')} must not be {ROOT_USER}, MinIO's root user of local mode")

    def launch(self) -> int:
        self.check_can_start()
        exe = binary(self.paths)
        if not exe.is_file():
            raise ServiceError(f"MinIO is not installed in {exe.parent}: run `cryptolake setup` first")
        self.data.mkdir(parents=True, exist_ok=True)
        env = {
            **os.environ,
            "MINIO_ROOT_USER": ROOT_USER,
            "MINIO_ROOT_PASSWORD": root_password(self.paths),
            "MINIO_UPDATE": "off",  # no update checks from a pinned dev build
        }
        argv = [
            str(exe),
            "server",
            str(self.data),
            "--address",
            join_host_port(self.host, self.port),
            "--console-address",
            join_host_port(self.host, self.console_port),
        ]
        log.info("starting MinIO on %s:%d (console %d)", self.host, self.port, self.console_port)
        return self.process.spawn(argv, env, self.paths.state)

    def wait_ready(self, timeout: float = 60.0) -> None:
        started = time.monotonic()
        hint = "the log lines below say why (a busy machine may need a longer timeout)"
        self.process.wait_ready(self._ready, timeout, hint)
        log.info("MinIO ready in %.1fs", time.monotonic() - started)

    def start(self, timeout: float = 60.0) -> int:
        pid = self.launch()
        self.wait_ready(timeout)
        return pid

    def stop(self, timeout: float = 30.0) -> None:
        self.process.stop(timeout)

    def _ready(self) -> bool:
        url = f"http://{join_host_port(self.host, self.port)}/minio/health/ready"
        try:
            with _NO_PROXY.open(url, timeout=1) as response:
                return bool(response.status == 200)
        except (urllib.error.URLError, OSError):
            return False


def s3_client(settings: Settings) -> Any:
    """A boto3 S3 client for the lake's endpoint and keys (path-style, as MinIO serves buckets)."""
    return boto3.client(
        "s3",
        endpoint_url=settings.s3_endpoint,
        aws_access_key_id=settings.s3_access_key,
        aws_secret_access_key=settings.s3_secret_key,
        region_name=settings.s3_region,
        config=Config(s3={"addressing_style": "path"}, retries={"max_attempts": 3}),
    )


def root_password(paths: LocalPaths) -> str:
    """MinIO's root password for the state folder of ``paths``: made at random the first time, kept in a file its
    owner alone reads."""
    path = paths.state / "minio-root-password"
    paths.state.mkdir(parents=True, exist_ok=True)
    try:
        with os.fdopen(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600), "w") as out:
            out.write(secrets.token_urlsafe(24))
    except FileExistsError:
        pass
    return path.read_text()


def root_settings(settings: Settings) -> Settings:
    """``settings`` with MinIO's root keys for the lake's: for what the lake user may not do, such as adding buckets."""
    return settings.with_(s3_access_key=ROOT_USER, s3_secret_key=root_password(LocalPaths.of(settings)))


def lake_policy(bucket: str) -> dict[str, Any]:
    """The lake user's policy: list ``bucket``, read, write and delete its objects; nothing else."""
    policy: dict[str, Any] = json.loads(LAKE_POLICY.read_text().replace("BUCKET", bucket))
    return policy


def ensure_bucket(settings: Settings) -> None:
    """Create ``settings.lake_bucket`` unless it exists, and the lake user of ``settings`` (created or its secret set
    again) with a policy allowing it that bucket (each bucket its own: the tests' stacks have one each)."""
    root = root_settings(settings)
    client = s3_client(root)
    try:
        client.create_bucket(Bucket=settings.lake_bucket)
    except ClientError as exc:
        if exc.response.get("Error", {}).get("Code") not in ("BucketAlreadyOwnedByYou", "BucketAlreadyExists"):
            raise ServiceError(f"creating bucket {settings.lake_bucket} failed: {exc}; is MinIO up?") from exc
    except BotoCoreError as exc:
        raise ServiceError(f"creating bucket {settings.lake_bucket} failed: {exc}; is MinIO up?") from exc
    admin = MinioAdmin(
        endpoint=urlsplit(settings.s3_endpoint).netloc,
        credentials=StaticProvider(root.s3_access_key, root.s3_secret_key),
        secure=False,  # local MinIO serves plain http on loopback (checked in MinIO())
    )
    policy = f"lake-{settings.lake_bucket}"
    user = settings.s3_access_key
    try:
        admin.policy_add(policy, policy=lake_policy(settings.lake_bucket))
        admin.user_add(user, settings.s3_secret_key)
        attached = json.loads(admin.user_info(user)).get("policyName", "")
        # Attaching a policy attached already is an error.
        if policy not in attached.split(","):
            admin.attach_policy([policy], user=user)
    except (MinioAdminException, HTTPError) as exc:
        raise ServiceError(f"setting up MinIO's lake user {user} failed: {exc}") from exc
