"""Imports point down the floors: ``core``, then ``ingestion`` and ``jobs`` (never each other), then the app."""

from __future__ import annotations

import ast
import subprocess
import sys
from collections.abc import Iterator

import pytest

from cryptolake.local.paths import REPO_ROOT

# A package may import its own modules and those of lower floors; nothing but the tests imports the tests.
FLOORS = {"core": 0, "ingestion": 1, "jobs": 1, "cryptolake": 2, "bench": 3}


def _imported(source: str) -> Iterator[tuple[int, str]]:
    # Every import, also those inside functions (the lazy ones are imports all the same).
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            yield from ((node.lineno, alias.name) for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            yield node.lineno, node.module


def wrong_way(package: str, source: str) -> list[str]:
    """``line: module`` of each import in ``source`` (a module of ``package``) that does not point down."""
    wrong = []
    for line, module in _imported(source):
        top = module.partition(".")[0]
        if top != package and (top == "tests" or FLOORS.get(top, -1) >= FLOORS[package]):
            wrong.append(f"{line}: {module}")
    return wrong


def test_every_import_points_down() -> None:
    wrong = [
        f"{path.relative_to(REPO_ROOT)}:{problem}"
        for package in FLOORS
        for path in sorted((REPO_ROOT / package).rglob("*.py"))
        for problem in wrong_way(package, path.read_text())
    ]
    assert wrong == []


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
def test_an_import_up_or_sideways_is_named(package: str, source: str) -> None:
    assert len(wrong_way(package, source)) == 1


def test_the_reference_shares_no_code_with_what_it_checks() -> None:
    # The tests' oracle reads the venues' frames and makes bars on its own: no project module but for type hints.
    tree = ast.parse((REPO_ROOT / "tests" / "reference.py").read_text())
    hints = [node for node in tree.body if isinstance(node, ast.If) and ast.unparse(node.test) == "TYPE_CHECKING"]
    code = ast.unparse(ast.Module([node for node in tree.body if node not in hints], []))
    assert [module for _, module in _imported(code) if module.partition(".")[0] in {*FLOORS, "tests"}] == []


def test_imports_down_and_within_pass() -> None:
    assert wrong_way("cryptolake", "from core import logs\nfrom cryptolake.local import paths\nimport jobs") == []


def test_the_ingestor_imports_without_pyspark() -> None:
    # Its image has no pyspark: the venues' Spark parsers import it only when the jobs call them.
    code = "import sys; sys.modules['pyspark'] = None; import ingestion.app, core.venues"
    subprocess.run([sys.executable, "-c", code], check=True, cwd=REPO_ROOT)
