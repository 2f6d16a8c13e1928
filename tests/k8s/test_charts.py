"""Lint, render and strictly validate every chart, ours and the Spark Operator's, as skaffold deploys them."""

from __future__ import annotations

import copy
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from cryptolake.k8s import chartdocs
from cryptolake.local.paths import REPO_ROOT
from tests.k8s.render import CHARTS, VARIANTS, Renderer, by_kind, run

Validate = Callable[[list[Path]], dict[str, Any]]
ManifestFile = Callable[[str, list[dict[str, Any]]], Path]


@pytest.mark.parametrize("variant", VARIANTS)
@pytest.mark.parametrize("chart", CHARTS)
def test_helm_lint(helm: Path, kube_version: str, chart: str, variant: str) -> None:
    path = REPO_ROOT / "charts" / chart
    args: list[str | Path] = [helm, "lint", path, "--strict", "--kube-version", kube_version]
    if variant == "kind":
        args += ["--values", path / "values-kind.yaml"]
    run(args)


def test_every_rendered_object_is_valid_for_the_kind_node(
    renderer: Renderer, kubeconform: Validate, manifest_file: ManifestFile
) -> None:
    renders = {f"{chart}-{variant}": renderer.chart(chart, variant) for chart in CHARTS for variant in VARIANTS}
    renders["spark-operator"] = renderer.operator()
    report = kubeconform([manifest_file(name, docs) for name, docs in renders.items()])
    problems = [f"{r['filename']}: {r['kind']} {r['name']}: {r['msg']}" for r in report["resources"]]
    assert not problems, "\n".join(problems)
    assert report["summary"]["valid"] == sum(len(docs) for docs in renders.values())


def test_validation_is_strict(renderer: Renderer, kubeconform: Validate, manifest_file: ManifestFile) -> None:
    """A misspelt field, in a built-in kind or in a SparkApplication, is an error, not a silent no-op."""
    docs = renderer.chart("cryptolake", "default")
    app = copy.deepcopy(by_kind(docs, "SparkApplication")[0])
    app["spec"]["driver"]["memroy"] = "1g"
    deployment = copy.deepcopy(by_kind(docs, "Deployment")[0])
    deployment["spec"]["template"]["spec"]["containers"][0]["readinesProbe"] = {}
    report = kubeconform([manifest_file("typos", [app, deployment])])
    assert {r["kind"] for r in report["resources"] if r["status"] == "statusInvalid"} == {
        "SparkApplication",
        "Deployment",
    }


def test_helm_unittest_suites(tool: Callable[[str], Path]) -> None:
    """The charts' own unit tests (charts/*/tests, one suite per template)."""
    charts = [REPO_ROOT / "charts" / chart for chart in CHARTS]
    suites = ["--file", "tests/*_test.yaml", "--file", "tests/*/*_test.yaml"]
    out = run([tool("helm-unittest"), "--strict", *suites, *charts])
    assert "FAIL" not in out, out


@pytest.mark.parametrize("chart", CHARTS)
def test_every_template_has_a_unittest_suite(chart: str) -> None:
    """tests/ mirrors templates/: <dir>/<template>_test.yaml per template, notes_test.yaml for NOTES.txt."""
    path = REPO_ROOT / "charts" / chart
    templates = {p.relative_to(path / "templates").with_suffix("") for p in (path / "templates").rglob("*.yaml")}
    templates.add(Path("notes"))
    suites = {
        p.relative_to(path / "tests").with_name(p.name.removesuffix("_test.yaml"))
        for p in (path / "tests").rglob("*_test.yaml")
    }
    assert templates == suites


@pytest.mark.parametrize("chart", CHARTS)
def test_every_values_key_is_documented(chart: str) -> None:
    """Style of the kubeflow charts: a `# --` comment on every key that holds a value, or on a key above it."""
    lines = (REPO_ROOT / "charts" / chart / "values.yaml").read_text().splitlines()
    documented_above: list[tuple[int, bool]] = []  # (indent, documented) of the enclosing keys
    undocumented = []
    for number, line in enumerate(lines):
        match = KEY_LINE.match(line)
        if not match:
            continue
        indent = len(match["indent"]) + len(match["item"] or "")
        while documented_above and documented_above[-1][0] >= indent:
            documented_above.pop()
        documented = _has_doc_comment(lines, number) or any(doc for _, doc in documented_above)
        if match["value"].strip() and not documented:
            undocumented.append(f"line {number + 1}: {match['key']}")
        documented_above.append((indent, documented))
    assert not undocumented, undocumented


def test_chart_readmes_are_what_helm_docs_makes_of_the_values() -> None:
    """charts/*/README.md, committed, equal helm-docs' output for the templates and each chart's values.yaml."""
    stale = chartdocs.stale()
    assert not stale, f"charts {stale}: README.md is not helm-docs' output for values.yaml; run {chartdocs.COMMAND}"


KEY_LINE = re.compile(r"^(?P<indent> *)(?P<item>- )?(?P<key>[^#\s][^:]*):(?P<value>.*)$")


def _has_doc_comment(lines: list[str], number: int) -> bool:
    above = number - 1
    while above >= 0 and lines[above].strip().startswith("#"):
        if lines[above].strip().startswith("# --"):
            return True
        above -= 1
    return False
