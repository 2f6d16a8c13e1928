"""manifests/kind-cluster.yaml: decoded by kind's own config types, and on the node image the charts are checked for."""

from __future__ import annotations

import hashlib
import json
import re
import subprocess
from pathlib import Path
from typing import Any

import pytest

from cryptolake.k8s.tools import TOOLS_DIR, Pin, ToolError, module_dir
from tests.k8s.render import run

HERE = Path(__file__).parent
KIND_CONFIG = HERE.parents[1] / "manifests" / "kind-cluster.yaml"
CHECKER = HERE / "kindconfig"


@pytest.fixture(scope="session")
def kindconfig() -> Path:
    """The strict decoder of tests/k8s/kindconfig, built once per version of its source."""
    digest = hashlib.sha256(b"".join(p.read_bytes() for p in sorted(CHECKER.iterdir()))).hexdigest()[:12]
    binary = TOOLS_DIR / "bin" / f"kindconfig-{digest}"
    if not binary.exists():
        binary.parent.mkdir(parents=True, exist_ok=True)
        done = subprocess.run(["go", "build", "-o", str(binary), "."], cwd=CHECKER, capture_output=True, text=True)
        if done.returncode != 0:
            raise ToolError(f"building {CHECKER} failed:\n{done.stderr}")
    return binary


@pytest.fixture(scope="session")
def cluster(kindconfig: Path) -> dict[str, Any]:
    decoded: dict[str, Any] = json.loads(run([kindconfig, KIND_CONFIG]))
    return decoded


def test_a_misspelt_field_is_rejected(kindconfig: Path, tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text(KIND_CONFIG.read_text().replace("extraPortMappings", "extraPortMapping"))
    done = subprocess.run([kindconfig, bad], capture_output=True, text=True, check=False)
    assert done.returncode != 0
    assert "extraPortMapping" in done.stderr


def test_checker_uses_the_pinned_kind(pins: dict[str, Pin]) -> None:
    assert f"sigs.k8s.io/kind {pins['kind'].version}" in (CHECKER / "go.mod").read_text()


def test_node_image_is_the_pinned_kinds_default(cluster: dict[str, Any], pins: dict[str, Pin]) -> None:
    defaults = (module_dir(pins["kind"]) / "pkg" / "apis" / "config" / "defaults" / "image.go").read_text()
    default_image = re.search(r'const Image = "([^"]+)"', defaults)
    assert default_image
    (node,) = cluster["nodes"]
    assert node["role"] == "control-plane"
    assert node["image"] == default_image[1]


def test_node_runs_the_kubernetes_the_charts_are_validated_for(cluster: dict[str, Any], pins: dict[str, Pin]) -> None:
    (node,) = cluster["nodes"]
    assert node["image"].split("@")[0] == f"kindest/node:{pins['kubernetes'].version}"


def test_host_ports_stay_on_loopback(cluster: dict[str, Any]) -> None:
    assert cluster["name"] == "cryptolake"
    for mapping in cluster["nodes"][0]["extraPortMappings"]:
        assert mapping["listenAddress"] == "127.0.0.1"
        assert 30000 <= mapping["containerPort"] <= 32767
