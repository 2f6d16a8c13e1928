"""Install the Kubernetes tools pinned in ``k8s-tools.txt`` from the Go module proxy, once.

Binaries are built from their module's own go.mod and go.sum (so replace directives hold, which ``go install
module@version`` refuses) and kept as ``<name>-<version>``; a second run finds them and costs nothing. Modules that
are only read (charts, CRDs, OpenAPI) stay in Go's module cache, their folders remembered in a small index.

Kubernetes and etcd replace their sibling modules with folders of their repository, which a module download lacks.
Their pins name the published version of those siblings; they are built in a writable copy whose go.mod requires
that version instead.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

from cryptolake.k8s import schemas
from cryptolake.local.paths import CACHE, REPO_ROOT

PIN_FILE = REPO_ROOT / "k8s-tools.txt"
TOOLS_DIR = CACHE / "tools" / "k8s"


class ToolError(RuntimeError):
    """A pinned tool could not be fetched, built or run."""


@dataclass(frozen=True)
class Pin:
    name: str
    module: str
    version: str
    package: str | None  # None: the module's files are read, nothing is built
    siblings: str | None = None  # version of the published modules that stand in for local replace directives

    @property
    def ref(self) -> str:
        return f"{self.module}@{self.version}"


def read_pins(path: Path = PIN_FILE) -> dict[str, Pin]:
    pins = {}
    for line in path.read_text().splitlines():
        if not line.strip() or line.startswith("#"):
            continue
        name, ref, package, *siblings = line.split()
        module, version = ref.split("@")
        pins[name] = Pin(name, module, version, None if package == "-" else package, *siblings)
    return pins


def _go(args: list[str], cwd: Path | None = None) -> str:
    # A go.work beside a module (Kubernetes ships one) would pull in folders its download lacks.
    env = {**os.environ, "GOWORK": "off"}
    try:
        done = subprocess.run(["go", *args], cwd=cwd, env=env, capture_output=True, text=True, check=False)
    except FileNotFoundError:
        raise ToolError("the Go toolchain (`go`) is not on PATH; it builds the pinned Kubernetes tools") from None
    if done.returncode != 0:
        raise ToolError(f"go {' '.join(args)} failed:\n{done.stderr[-4000:]}")
    return done.stdout


def module_dir(pin: Pin, tools_dir: Path = TOOLS_DIR) -> Path:
    """Folder of the pinned module's source, downloaded into Go's module cache on first use."""
    index_path = tools_dir / "modules.json"
    index: dict[str, str] = json.loads(index_path.read_text()) if index_path.exists() else {}
    known = index.get(pin.ref)
    if known and Path(known).is_dir():
        return Path(known)
    info = json.loads(_go(["mod", "download", "-json", pin.ref]))
    if "Error" in info:
        raise ToolError(f"go mod download {pin.ref}: {info['Error']}")
    index[pin.ref] = info["Dir"]
    tools_dir.mkdir(parents=True, exist_ok=True)
    index_path.write_text(json.dumps(index, indent=1, sort_keys=True) + "\n")
    return Path(info["Dir"])


def _with_published_siblings(pin: Pin, source: Path, tools_dir: Path) -> Path:
    """A writable copy of the module whose local replace directives give way to the published siblings."""
    copy = tools_dir / "src" / pin.ref.replace("/", "_")
    if copy.is_dir():
        return copy
    partial = copy.with_name(copy.name + ".part")
    shutil.rmtree(partial, ignore_errors=True)
    # The module cache's files are read-only; copied without their modes, go.mod and go.sum can be rewritten.
    shutil.copytree(source, partial, copy_function=shutil.copyfile, symlinks=True)
    partial.chmod(0o755)
    mod = json.loads(_go(["mod", "edit", "-json"], cwd=partial))
    required = {req["Path"] for req in mod.get("Require") or []}
    edits = []
    for rep in mod.get("Replace") or []:
        if rep["New"]["Path"].startswith((".", "/")):
            edits.append(f"-dropreplace={rep['Old']['Path']}")
            if rep["Old"]["Path"] in required:
                edits.append(f"-require={rep['Old']['Path']}@{pin.siblings}")
    _go(["mod", "edit", *edits], cwd=partial)
    partial.rename(copy)
    return copy


# Kubernetes' build scripts stamp its version into these packages; unstamped, the API server reports v0.0.0 and
# charts' kubeVersion constraints reject it.
VERSION_PACKAGES = {"k8s.io/kubernetes": ("k8s.io/component-base/version", "k8s.io/client-go/pkg/version")}


def _ldflags(pin: Pin) -> str:
    major, minor, _ = pin.version.removeprefix("v").split(".", 2)
    stamps = {"gitVersion": pin.version, "gitMajor": major, "gitMinor": minor, "gitTreeState": "clean"}
    flags = ["-s", "-w"]
    for package in VERSION_PACKAGES.get(pin.module, ()):
        flags += [f"-X {package}.{name}={value}" for name, value in stamps.items()]
    return " ".join(flags)


def binary(pin: Pin, tools_dir: Path = TOOLS_DIR) -> Path:
    """Path of the pinned tool's binary, built on first use."""
    if pin.package is None:
        raise ToolError(f"{pin.name} is a module to read, not a tool to build")
    target = tools_dir / "bin" / f"{pin.name}-{pin.version}"
    if target.exists():
        return target
    source = module_dir(pin, tools_dir)
    # Built in place where the module's own go.sum suffices: the module cache is read-only, and such a build writes
    # nothing there. A copy with published siblings needs their sums added to its go.sum (-mod=mod).
    flags = []
    if pin.siblings:
        source = _with_published_siblings(pin, source, tools_dir)
        flags = ["-mod=mod"]
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_name(target.name + ".part")
    _go(["build", "-trimpath", *flags, f"-ldflags={_ldflags(pin)}", "-o", str(partial), f"./{pin.package}"], cwd=source)
    partial.replace(target)
    return target


def build_local(name: str, folder: Path, tools_dir: Path = TOOLS_DIR) -> Path:
    """A Go main package kept in this repository with its own go.mod and go.sum, built on first use and again
    whenever its files change."""
    content = hashlib.sha256()
    for path in sorted(p for p in folder.iterdir() if p.is_file()):
        content.update(path.name.encode() + b"\0" + path.read_bytes())
    target = tools_dir / "bin" / f"{name}-{content.hexdigest()[:12]}"
    if target.exists():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_name(target.name + ".part")
    _go(["build", "-trimpath", "-mod=readonly", "-ldflags=-s -w", "-o", str(partial), "."], cwd=folder)
    partial.replace(target)
    return target


def operator_chart(pins: dict[str, Pin], tools_dir: Path = TOOLS_DIR) -> Path:
    """The pinned Spark Operator's Helm chart, as published from its module."""
    return module_dir(pins["spark-operator"], tools_dir) / "charts" / "spark-operator-chart"


def kubernetes_schemas(pins: dict[str, Pin], tools_dir: Path = TOOLS_DIR) -> Path:
    """kubeconform schemas of the pinned Kubernetes version, made from its OpenAPI on first use."""
    pin = pins["kubernetes"]
    swagger = module_dir(pin, tools_dir) / "api" / "openapi-spec" / "swagger.json"
    return schemas.write_kubernetes_schemas(swagger, tools_dir / "schemas" / f"kubernetes-{pin.version}")


def crd_schemas(pins: dict[str, Pin], tools_dir: Path = TOOLS_DIR) -> Path:
    """kubeconform schemas of the pinned Spark Operator's CRDs (SparkApplication among them)."""
    crds = sorted((operator_chart(pins, tools_dir) / "crds").glob("*.yaml"))
    return schemas.write_crd_schemas(crds, tools_dir / "schemas" / f"spark-operator-{pins['spark-operator'].version}")


def install(pin_file: Path = PIN_FILE, tools_dir: Path = TOOLS_DIR) -> dict[str, Path]:
    """Install every pinned tool and schema set; returns what is where."""
    pins = read_pins(pin_file)
    installed = {pin.name: binary(pin, tools_dir) for pin in pins.values() if pin.package}
    installed["spark-operator chart"] = operator_chart(pins, tools_dir)
    installed["kind module"] = module_dir(pins["kind"], tools_dir)
    installed["kubernetes schemas"] = kubernetes_schemas(pins, tools_dir)
    installed["CRD schemas"] = crd_schemas(pins, tools_dir)
    return installed


def tool_env() -> dict[str, str]:
    """Environment for running helm and skaffold without touching the user's own config and caches."""
    home = TOOLS_DIR / "home"
    return {
        **os.environ,
        "HELM_CONFIG_HOME": str(home / "helm-config"),
        "HELM_CACHE_HOME": str(home / "helm-cache"),
        "HELM_DATA_HOME": str(home / "helm-data"),
        "SKAFFOLD_UPDATE_CHECK": "false",
        "SKAFFOLD_COLLECT_METRICS": "false",
    }
