"""Imports point down the floors: ``core``, then ``ingestion`` and ``jobs`` (never each other), then the app. The
rules are import-linter's contracts in pyproject.toml; here they pass on the project and fail on a planted import."""

from __future__ import annotations

import ast
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from cryptolake.local.paths import REPO_ROOT

PACKAGES = ("core", "ingestion", "jobs", "cryptolake", "bench", "tests")
LINT_IMPORTS = Path(sys.executable).with_name("lint-imports")
# The modules the planted imports name, made in the test's tree so that each import has its target.
PLANTED_TARGETS = (
    "cryptolake/cli.py",
    "ingestion/producer.py",
    "jobs/silver.py",
    "bench/stats.py",
    "tests/reference.py",
)


def lint_imports(root: Path) -> subprocess.CompletedProcess[str]:
    """import-linter's verdict on the packages under ``root``, by the project's contracts."""
    return subprocess.run(
        [str(LINT_IMPORTS), "--config", str(REPO_ROOT / "pyproject.toml"), "--no-cache"],
        cwd=root,
        env={**os.environ, "PYTHONPATH": str(root)},
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_every_import_points_down() -> None:
    done = lint_imports(REPO_ROOT)
    assert done.returncode == 0, done.stdout + done.stderr


@pytest.mark.parametrize(
    ("package", "source"),
    [
        ("core", "from cryptolake import cli"),
        ("core", "def lazy():\n    import ingestion.producer"),
        ("ingestion", "from jobs.silver import parse_trades"),
        ("jobs", "import ingestion"),
        ("cryptolake", "from bench import stats"),
        ("bench", "from tests import reference"),
    ],
)
def test_an_import_up_or_sideways_is_named(tmp_path: Path, package: str, source: str) -> None:
    for name in PACKAGES:
        (tmp_path / name).mkdir()
        (tmp_path / name / "__init__.py").touch()
    for module in (
        "cryptolake/cli.py",
        "ingestion/producer.py",
        "jobs/silver.py",
        "bench/stats.py",
        "tests/reference.py",
    ):
        (tmp_path / module).touch()
    assert lint_imports(tmp_path).returncode == 0, "the tree without the planted import keeps the contracts"
    (tmp_path / package / "planted.py").write_text(source + "\n")
    done = lint_imports(tmp_path)
    assert done.returncode == 1 and f"{package}.planted" in done.stdout, done.stdout + done.stderr


def _imported(source: str) -> Iterator[str]:
    # Every import, also those inside functions (the lazy ones are imports all the same).
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            yield node.module


def test_the_reference_shares_no_code_with_what_it_checks() -> None:
    # The tests' oracle reads the venues' frames and makes bars on its own: no project module but for type hints
    # (a rule of its own, not a floor: import-linter would have to skip type-checking imports everywhere).
    tree = ast.parse((REPO_ROOT / "tests" / "reference.py").read_text())
    hints = [node for node in tree.body if isinstance(node, ast.If) and ast.unparse(node.test) == "TYPE_CHECKING"]
    code = ast.unparse(ast.Module([node for node in tree.body if node not in hints], []))
    assert [module for module in _imported(code) if module.partition(".")[0] in PACKAGES] == []


def test_the_ingestor_imports_without_pyspark() -> None:
    # Its image has no pyspark: the venues' Spark parsers import it only when the jobs call them.
    code = "import sys; sys.modules['pyspark'] = None; import ingestion.app, core.venues"
    subprocess.run([sys.executable, "-c", code], check=True, cwd=REPO_ROOT)
