"""Generate each chart's ``README.md`` with helm-docs (pinned in ``k8s-tools.txt``).

A chart's README is the layout of ``charts/readme.gotmpl`` with the chart's own paragraph from its
``README.md.gotmpl``, filled from ``Chart.yaml`` and the ``# --`` comments of ``values.yaml``, one table row per value
in the file's order; a test fails when a committed README differs from what this writes.
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from pathlib import Path

from cryptolake.k8s import tools
from cryptolake.local.paths import REPO_ROOT

CHARTS_DIR = REPO_ROOT / "charts"
COMMAND = "python -m cryptolake.k8s chart-docs"
LAYOUT = "readme.gotmpl"  # in charts/, shared by every chart's README.md.gotmpl


def generate(charts_dir: Path = CHARTS_DIR) -> list[Path]:
    """Write README.md into every chart under ``charts_dir``; returns their paths."""
    helm_docs = tools.binary(tools.read_pins()["helm-docs"])
    # Values in their file's order, which groups them as values.yaml does; warnings only, so that stderr means trouble.
    args = [str(helm_docs), "--chart-search-root", str(charts_dir), "--sort-values-order", "file"]
    # The layout first, so that the chart's template can call it; helm-docs finds a file outside the chart by its
    # absolute path only.
    args += ["--template-files", str(charts_dir / LAYOUT), "--template-files", "README.md.gotmpl"]
    args += ["--log-level", "warning"]
    done = subprocess.run(args, capture_output=True, text=True, check=False)
    # A template error is only a warning to helm-docs, which then writes a README without the values' table.
    if done.returncode != 0 or done.stderr.strip():
        raise tools.ToolError(f"{' '.join(args)} exited {done.returncode}:\n{done.stdout}\n{done.stderr}")
    return sorted(charts_dir.glob("*/README.md"))


def stale(charts_dir: Path = CHARTS_DIR) -> list[str]:
    """Charts whose committed README.md is missing or differs from what helm-docs generates now."""
    with tempfile.TemporaryDirectory() as scratch:
        copy = Path(scratch) / "charts"
        shutil.copytree(charts_dir, copy, ignore=shutil.ignore_patterns("README.md"))
        generated = {path.parent.name: path.read_text() for path in generate(copy)}
    return sorted(
        chart
        for chart, text in generated.items()
        if not (charts_dir / chart / "README.md").exists() or (charts_dir / chart / "README.md").read_text() != text
    )
