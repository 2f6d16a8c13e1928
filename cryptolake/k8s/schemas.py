"""JSON schemas for kubeconform, made from the pinned Kubernetes OpenAPI and the SparkApplication CRD.

kubeconform looks a schema up as ``<kind><suffix>.json`` (see :func:`schema_filename`). The schemas are strict: an
object schema that lists its properties rejects any other, which is what catches a misspelt field in a template.
Kubernetes' definitions go into one ``_definitions.json`` that every per-kind file refers to, so the folder stays
a few megabytes instead of one copy of the Pod spec per kind.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import yaml

DEFINITIONS = "_definitions.json"
_DONE = ".complete"


def schema_filename(kind: str, api_version: str) -> str:
    """The file name kubeconform derives from a resource's kind and apiVersion (first label of the group only)."""
    group_version = api_version.split("/")
    suffix = "-" + group_version[0].split(".")[0].lower()
    if len(group_version) > 1:
        suffix += "-" + group_version[1].lower()
    return f"{kind.lower()}{suffix}.json"


def strict(node: Any) -> Any:
    """A copy of an OpenAPI schema with closed objects and the YAML forms Kubernetes accepts for special strings."""
    if isinstance(node, list):
        return [strict(item) for item in node]
    if not isinstance(node, dict):
        return node
    out = {key: strict(value) for key, value in node.items()}
    if out.get("format") == "int-or-string":
        # OpenAPI v2 writes IntOrString as a string; manifests write ports and percentages as either.
        del out["format"]
        out["type"] = ["string", "integer"]
    if (
        "properties" in out
        and "additionalProperties" not in out
        and not out.get("x-kubernetes-preserve-unknown-fields")
    ):
        out["additionalProperties"] = False
    return out


def _api_version(gvk: dict[str, str]) -> str:
    return f"{gvk['group']}/{gvk['version']}" if gvk["group"] else gvk["version"]


def write_kubernetes_schemas(swagger: Path, dest: Path) -> Path:
    """Write kubeconform schemas for every kind of the OpenAPI v2 document ``swagger`` into ``dest`` (once)."""
    if (dest / _DONE).exists():
        return dest
    dest.mkdir(parents=True, exist_ok=True)
    definitions = json.loads(swagger.read_text())["definitions"]
    shared = {name: strict(schema) for name, schema in definitions.items()}
    # A Quantity is written as a string or a bare number (`cpu: 1`).
    shared["io.k8s.apimachinery.pkg.api.resource.Quantity"] = {"type": ["string", "number"]}
    (dest / DEFINITIONS).write_text(json.dumps({"definitions": shared}))
    for name, schema in definitions.items():
        for gvk in schema.get("x-kubernetes-group-version-kind", []):
            ref = {"$ref": f"{DEFINITIONS}#/definitions/{name}"}
            (dest / schema_filename(gvk["kind"], _api_version(gvk))).write_text(json.dumps(ref))
    (dest / _DONE).touch()
    return dest


def write_crd_schemas(crds: Iterable[Path], dest: Path) -> Path:
    """Write one standalone kubeconform schema per served version of each CustomResourceDefinition (once)."""
    if (dest / _DONE).exists():
        return dest
    dest.mkdir(parents=True, exist_ok=True)
    for path in crds:
        crd = yaml.safe_load(path.read_text())
        spec = crd["spec"]
        for version in spec["versions"]:
            if not version.get("served", True):
                continue
            schema = strict(version["schema"]["openAPIV3Schema"])
            api_version = f"{spec['group']}/{version['name']}"
            (dest / schema_filename(spec["names"]["kind"], api_version)).write_text(json.dumps(schema))
    (dest / _DONE).touch()
    return dest
