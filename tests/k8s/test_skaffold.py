"""skaffold.yaml: parsed by the pinned skaffold itself (strict), and consistent with the charts, pins and settings."""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from core.settings import env_name, secret_env_names
from cryptolake.k8s.tools import Pin
from tests.k8s.render import SKAFFOLD_FILE, Renderer, one, run, skaffold_config

RELEASE_ORDER = ["spark-operator", "redpanda", "minio", "cryptolake"]


@pytest.fixture(scope="session")
def effective(tool: Callable[[str], Path]) -> Callable[[str | None], dict[str, Any]]:
    """The configuration skaffold itself reads, for a profile or none."""
    skaffold = tool("skaffold")

    def read(profile: str | None) -> dict[str, Any]:
        args: list[str | Path] = [skaffold, "diagnose", "--yaml-only", "--filename", SKAFFOLD_FILE]
        if profile:
            args += ["--profile", profile]
        config: dict[str, Any] = yaml.safe_load(run(args))
        return config

    return read


def releases(config: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {r["name"]: r for r in config["deploy"]["helm"]["releases"]}


def test_schema_version_is_the_pinned_skaffolds_latest(pins: dict[str, Pin]) -> None:
    from cryptolake.k8s.tools import module_dir

    source = module_dir(pins["skaffold"]) / "pkg" / "skaffold" / "schema" / "latest" / "config.go"
    latest = re.search(r'const Version string = "([^"]+)"', source.read_text())
    assert latest
    assert skaffold_config()["apiVersion"] == latest[1]


def test_default_pipeline(effective: Callable[[str | None], dict[str, Any]], pins: dict[str, Pin]) -> None:
    config = effective(None)
    assert config["build"]["local"]["push"] is False
    assert [a["image"] for a in config["build"]["artifacts"]] == ["cryptolake-spark", "cryptolake-ingestor"]
    deployed = releases(config)
    assert list(deployed) == RELEASE_ORDER
    operator = deployed["spark-operator"]
    assert operator["version"] == pins["spark-operator"].version.removeprefix("v")
    assert operator["remoteChart"] == "spark-operator"
    assert operator["wait"] is True
    assert operator["createNamespace"] is True


def test_topic_and_bucket_are_made_before_cryptolake_starts(effective: Callable[[str | None], dict[str, Any]]) -> None:
    """Releases go one at a time in order; each one before cryptolake is waited for, its Jobs (the topic, the bucket
    and its user) completed, so the streams and the ingestor never start against a missing topic or bucket."""
    helm = effective(None)["deploy"]["helm"]
    assert helm.get("concurrency", 1) == 1
    for command in ("install", "upgrade"):
        assert "--wait-for-jobs" in helm["flags"][command], command
    deployed = releases(effective(None))
    assert list(deployed) == RELEASE_ORDER
    for name in RELEASE_ORDER[: RELEASE_ORDER.index("cryptolake")]:
        assert deployed[name].get("wait") is True, name


def test_images_reach_the_cryptolake_chart(effective: Callable[[str | None], dict[str, Any]]) -> None:
    config = effective(None)
    templates = releases(config)["cryptolake"]["setValueTemplates"]
    for artifact in config["build"]["artifacts"]:
        suffix = re.sub(r"[./:-]", "_", artifact["image"])
        component = "spark" if artifact["image"].endswith("spark") else "ingestor"
        assert templates[f"{component}.image.repository"] == f"{{{{.IMAGE_REPO_{suffix}}}}}"
        assert templates[f"{component}.image.tag"] == f"{{{{.IMAGE_TAG_{suffix}}}}}"


def test_value_files_and_charts_exist(effective: Callable[[str | None], dict[str, Any]]) -> None:
    for release in releases(effective(None)).values():
        for path in [release.get("chartPath"), *release.get("valuesFiles", [])]:
            assert path is None or Path(path).exists(), path


def test_port_forwards_target_the_consoles(
    effective: Callable[[str | None], dict[str, Any]], renderer: Renderer
) -> None:
    stack = renderer.stack("kind")
    forwards = effective(None)["portForward"]
    assert {f["resourceName"] for f in forwards} == {"minio-console", "redpanda-console"}
    for forward in forwards:
        service = one(stack, "Service", forward["resourceName"])
        assert forward["port"] in {p["port"] for p in service["spec"]["ports"]}


def test_bring_your_own_profile(effective: Callable[[str | None], dict[str, Any]]) -> None:
    config = effective("byo")
    deployed = releases(config)
    assert list(deployed) == ["spark-operator", "cryptolake"]
    assert "portForward" not in config
    assert "push" not in config["build"]["local"], "skaffold must push to a remote cluster's registry"
    templates = deployed["cryptolake"]["setValueTemplates"]
    assert templates["credentials.existingSecret"] == ""
    for key, template in templates.items():
        prefix, _, setting = key.rpartition(".")
        if prefix not in ("settings", "credentials.values"):
            continue
        # The same variable names local mode reads, secrets only as credentials.
        assert re.search(rf"\.{env_name(setting)}\b", template), key
        assert (env_name(setting) in secret_env_names()) == (prefix == "credentials.values"), key
