"""Fixtures of the Kubernetes checks: the pinned tools, installed on first use (Go builds from the module proxy,
then cached under .cryptolake/tools/k8s), the charts rendered with them, and the test control plane that
test_control_plane.py and test_pods.py share, inside the cluster ranges' blackhole routes."""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyspark
import pytest
import yaml

from cryptolake.k8s import tools
from tests.k8s import controlplane, render, sparkoperator
from tests.k8s import node as nodes
from tests.k8s.controlplane import ControlPlane

# A first run builds helm, kubeconform, helm-unittest, skaffold and the control plane from source: beyond the suite's
# per-test limit.
INSTALL_TIMEOUT = 1800
# Stands for whatever tag skaffold gives the images it builds; test_pods.py builds and loads images of another tag.
TIER1_TAG = "tier1"


needs_root = pytest.mark.skipif(
    sys.platform != "linux" or os.geteuid() != 0, reason="the cluster ranges' blackhole routes need root on Linux"
)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    here = Path(__file__).parent
    for item in items:
        if here in item.path.parents:
            item.add_marker(pytest.mark.timeout(INSTALL_TIMEOUT))


@pytest.fixture(scope="session")
def pins() -> dict[str, tools.Pin]:
    return tools.read_pins()


@pytest.fixture(scope="session")
def tool(pins: dict[str, tools.Pin]) -> Callable[[str], Path]:
    """Binary of a pinned tool, built on first use."""

    def get(name: str) -> Path:
        return tools.binary(pins[name])

    return get


@pytest.fixture(scope="session")
def helm(tool: Callable[[str], Path]) -> Path:
    return tool("helm")


@pytest.fixture(scope="session")
def kube_version(pins: dict[str, tools.Pin]) -> str:
    """Kubernetes version of the kind node, without the v."""
    return pins["kubernetes"].version.removeprefix("v")


@pytest.fixture(scope="session")
def renderer(helm: Path, pins: dict[str, tools.Pin], kube_version: str) -> render.Renderer:
    return render.Renderer(helm, tools.operator_chart(pins), kube_version)


@pytest.fixture(scope="session")
def kubeconform(
    tool: Callable[[str], Path], pins: dict[str, tools.Pin], kube_version: str
) -> Callable[[list[Path]], dict[str, Any]]:
    """Strict validation against the kind node's Kubernetes schemas and the Spark Operator's CRDs."""
    binary = tool("kubeconform")
    schema_dirs = [tools.kubernetes_schemas(pins), tools.crd_schemas(pins)]

    def validate(files: list[Path]) -> dict[str, Any]:
        return render.kubeconform(binary, schema_dirs, kube_version, files)

    return validate


@pytest.fixture
def manifest_file(tmp_path: Path) -> Callable[[str, list[render.Manifest]], Path]:
    """Write manifests to a file of this test's temporary folder."""

    def write(name: str, docs: list[render.Manifest]) -> Path:
        path = tmp_path / f"{name}.yaml"
        path.write_text(yaml.safe_dump_all(docs, sort_keys=False))
        return path

    return write


@pytest.fixture(scope="session")
def network() -> Iterator[None]:
    """The cluster ranges dropped, then the pods' bridge in one /24 of them."""
    nodes.install_packages({"nft": "nftables"})
    with controlplane.blackholed(), controlplane.pod_network():
        yield


@pytest.fixture(scope="session")
def plane(
    network: None, tool: Callable[[str], Path], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ControlPlane]:
    folder = tmp_path_factory.mktemp("control-plane")
    with controlplane.running(tool("etcd"), tool("kube-apiserver"), folder, INSTALL_TIMEOUT) as running:
        yield running


@dataclass(frozen=True)
class Cluster:
    plane: ControlPlane
    helm: Path

    @property
    def api(self) -> controlplane.Api:
        return self.plane.api

    def helm_run(self, *args: str | Path) -> str:
        return render.run([self.helm, *args, "--kubeconfig", self.plane.kubeconfig])


@pytest.fixture(scope="session")
def cluster(
    plane: ControlPlane,
    helm: Path,
    tool: Callable[[str], Path],
    pins: dict[str, tools.Pin],
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Cluster]:
    """The releases installed one after the other, as skaffold does; the Spark Operator's controller and webhook run
    (out of cluster) before anything after it is installed."""
    variables = render.skaffold_images(TIER1_TAG)
    spark_home = Path(pyspark.__file__).parent
    installed = Cluster(plane, helm)
    with ExitStack() as stack:
        for release in render.skaffold_config()["deploy"]["helm"]["releases"]:
            installed.helm_run(*render.helm_install(release, tools.operator_chart(pins), variables))
            if "remoteChart" in release:
                folder = tmp_path_factory.mktemp("spark-operator")
                stack.enter_context(
                    sparkoperator.running(
                        plane,
                        tool("spark-operator"),
                        release["name"],
                        render.namespace(),
                        spark_home,
                        folder,
                        INSTALL_TIMEOUT,
                    )
                )
        yield installed
