"""Tier 2, step 5: the minio release's pods: the server on its volume, its setup Job, and the Job again on an upgrade
(see test_pods_1_node.py for the steps)."""

from __future__ import annotations

import base64
import re
from typing import Any
from urllib.parse import urlsplit

import pyarrow.fs as pafs
import pytest

from core.settings import Settings
from cryptolake import lake
from cryptolake.k8s import tools
from tests.k8s import node as nodes
from tests.k8s import render, workloads
from tests.k8s.conftest import MINIO_RELEASE, Cluster, lake_settings, needs_root, setup_jobs, wait_job_done

pytestmark = needs_root


def test_minio_runs_from_its_chart_and_its_setup_job_gives_the_lake_user_its_bucket(
    cluster: Cluster, minio: dict[str, Any]
) -> None:
    """The lake user of the release's Secret writes and reads its bucket, and nothing else, over the server pod's
    address."""
    fs = lake.filesystem(lake_settings(cluster.api, Settings()))
    with fs.open_output_stream("lakehouse/tier2/hello.txt") as out:
        out.write(b"hello")
    with fs.open_input_stream("lakehouse/tier2/hello.txt") as read:
        assert read.read() == b"hello"
    # A bucket the root user makes is beyond the lake user's policy.
    root = cluster.api.get(workloads.namespaced("v1/secrets", f"{MINIO_RELEASE}-root"))["data"]
    root_fs = pafs.S3FileSystem(
        access_key=base64.b64decode(root["MINIO_ROOT_USER"]).decode(),
        secret_key=base64.b64decode(root["MINIO_ROOT_PASSWORD"]).decode(),
        endpoint_override=urlsplit(lake_settings(cluster.api, Settings()).s3_endpoint).netloc,
        scheme="http",
        allow_bucket_creation=True,
    )
    root_fs.create_dir("elsewhere")
    with pytest.raises(OSError, match="ACCESS_DENIED"), fs.open_output_stream("elsewhere/hello.txt") as out:
        out.write(b"hello")


def test_minio_setup_job_runs_again_on_an_upgrade_and_leaves_what_exists(
    cluster: Cluster, node: nodes.Node, minio: dict[str, Any], pins: dict[str, tools.Pin]
) -> None:
    """Issue 10's fourth defect in real pods: the Job, gone once its TTL passes (deleted here at once), comes back
    with `helm upgrade` and completes again on the bucket, policy and user that exist, with a shell and mc only."""
    name = minio["metadata"]["name"]
    cluster.api.request("DELETE", workloads.namespaced("batch/v1/jobs", name) + "?propagationPolicy=Foreground")
    workloads.wait_on_pods(
        "the job gone", lambda: not setup_jobs(cluster.api), workloads.Pods(cluster.api, node, f"job-name={name}")
    )
    release = render.skaffold_release(MINIO_RELEASE)
    cluster.helm_run(*render.helm_install(release, tools.operator_chart(pins), {}, verb="upgrade"))
    (again,) = setup_jobs(cluster.api)
    wait_job_done(cluster.api, node, again["metadata"]["name"], "the setup job to complete again")
    (pod,) = workloads.selected(cluster.api, "v1/pods", f"job-name={name}")
    log = workloads.pod_log(cluster.api, pod["metadata"]["name"])
    assert re.search(r"^policy \S+ is attached to \S+ already$", log, re.M)
