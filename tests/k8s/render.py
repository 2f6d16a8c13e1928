"""Render and validate the deployment offline: helm templates of our charts and the Spark Operator's, as skaffold.yaml
installs them, and kubeconform on the result. Used by tests/k8s; needs no cluster."""

from __future__ import annotations

import json
import re
import subprocess
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from cryptolake.k8s.tools import ToolError, tool_env
from cryptolake.local.paths import REPO_ROOT

CHARTS = ("redpanda", "minio", "cryptolake")
VARIANTS = ("default", "kind")
SKAFFOLD_FILE = REPO_ROOT / "skaffold.yaml"
OPERATOR_VALUES = REPO_ROOT / "manifests" / "spark-operator-values.yaml"

Manifest = dict[str, Any]


def run(args: list[str | Path], cwd: Path = REPO_ROOT) -> str:
    """Run a tool and return its output; its failure, with everything it printed, is a ToolError."""
    done = subprocess.run([str(a) for a in args], cwd=cwd, capture_output=True, text=True, env=tool_env(), check=False)
    if done.returncode != 0:
        raise ToolError(f"{' '.join(map(str, args))} exited {done.returncode}:\n{done.stdout}\n{done.stderr}")
    return str(done.stdout)


def pyspark_version() -> str:
    groups = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())["dependency-groups"]
    (pin,) = [dep for dep in groups["jobs"] if dep.startswith("pyspark==")]
    return str(pin).removeprefix("pyspark==")


def skaffold_config() -> dict[str, Any]:
    config: dict[str, Any] = yaml.safe_load(SKAFFOLD_FILE.read_text())
    return config


def skaffold_release(name: str) -> dict[str, Any]:
    """One of skaffold.yaml's Helm releases, by name."""
    (release,) = [r for r in skaffold_config()["deploy"]["helm"]["releases"] if r["name"] == name]
    return dict(release)


def namespace() -> str:
    """The one namespace skaffold installs every release into."""
    namespaces = {str(r["namespace"]) for r in skaffold_config()["deploy"]["helm"]["releases"]}
    if len(namespaces) != 1:
        raise ValueError(f"skaffold.yaml's releases span namespaces {namespaces}")
    return namespaces.pop()


def skaffold_images(tag: str) -> dict[str, str]:
    """The template variables skaffold fills for its artifacts once built locally under ``tag`` (nothing pushed, so
    the repository is the artifact's own name)."""
    found = {}
    for artifact in skaffold_config()["build"]["artifacts"]:
        suffix = re.sub(r"[./:-]", "_", artifact["image"])
        found[f"IMAGE_REPO_{suffix}"] = artifact["image"]
        found[f"IMAGE_TAG_{suffix}"] = tag
    return found


def helm_install(
    release: dict[str, Any], operator_chart: Path, variables: dict[str, str], verb: str = "install"
) -> list[str | Path]:
    """Arguments of ``helm install`` (or ``upgrade``) for one skaffold release, as skaffold passes them, except for
    the waits: the remote operator chart is the pinned module's copy, and each setValueTemplate has its variables
    filled."""
    chart = REPO_ROOT / release["chartPath"] if "chartPath" in release else operator_chart
    args: list[str | Path] = [verb, release["name"], chart, "--namespace", release["namespace"]]
    if release.get("createNamespace"):
        args.append("--create-namespace")
    for values in release.get("valuesFiles", []):
        args += ["--values", REPO_ROOT / values]
    for key, template in release.get("setValueTemplates", {}).items():
        value = re.sub(r"\{\{\s*\.(\w+)\s*\}\}", lambda m: variables[m[1]], template)
        args += ["--set", f"{key}={value}"]
    return args


def by_kind(docs: list[Manifest], kind: str) -> list[Manifest]:
    return [d for d in docs if d["kind"] == kind]


def one(docs: list[Manifest], kind: str, name: str) -> Manifest:
    found = [d for d in docs if d["kind"] == kind and d["metadata"]["name"] == name]
    if len(found) != 1:
        raise LookupError(f"expected one {kind} {name}, found {len(found)}")
    return found[0]


@dataclass
class Renderer:
    """helm template, offline, for the Kubernetes version of the kind node; renders are cached."""

    helm: Path
    operator_chart: Path
    kube_version: str
    _cache: dict[tuple[str, str], list[Manifest]] = field(default_factory=dict)

    def template(
        self, chart: Path, release: str, values_files: tuple[Path, ...] = (), sets: tuple[str, ...] = ()
    ) -> list[Manifest]:
        args: list[str | Path] = [self.helm, "template", release, chart, "--namespace", namespace()]
        args += ["--kube-version", self.kube_version]
        for values in values_files:
            args += ["--values", values]
        for assignment in sets:
            args += ["--set", assignment]
        return [doc for doc in yaml.safe_load_all(run(args)) if doc]

    def chart(self, name: str, variant: str) -> list[Manifest]:
        """One of our charts rendered as its skaffold release, with default or kind values."""
        key = (name, variant)
        if key not in self._cache:
            path = REPO_ROOT / "charts" / name
            values = (path / "values-kind.yaml",) if variant == "kind" else ()
            self._cache[key] = self.template(path, name, values)
        return self._cache[key]

    def operator(self) -> list[Manifest]:
        """The Spark Operator's chart with manifests/spark-operator-values.yaml."""
        key = ("spark-operator", "kind")
        if key not in self._cache:
            self._cache[key] = self.template(self.operator_chart, "spark-operator", (OPERATOR_VALUES,))
        return self._cache[key]

    def stack(self, variant: str) -> list[Manifest]:
        """Everything skaffold deploys: the operator and our three charts."""
        return self.operator() + [doc for name in CHARTS for doc in self.chart(name, variant)]


def kubeconform(binary: Path, schema_dirs: list[Path], kube_version: str, files: list[Path]) -> dict[str, Any]:
    """Validate manifest files strictly against the given schema folders; kubeconform's JSON report."""
    args = [str(binary), "-strict", "-summary", "-output", "json", "-kubernetes-version", kube_version]
    for folder in schema_dirs:
        args += ["-schema-location", f"{folder}/{{{{ .ResourceKind }}}}{{{{ .KindSuffix }}}}.json"]
    done = subprocess.run([*args, *map(str, files)], capture_output=True, text=True, check=False)
    try:
        report: dict[str, Any] = json.loads(done.stdout)
    except json.JSONDecodeError:
        raise ToolError(f"kubeconform failed:\n{done.stdout}\n{done.stderr}") from None
    return report
