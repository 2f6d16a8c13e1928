"""The notebook is committed without outputs, so what it shows always comes from the reader's own lake (the end-to-end
run in tests/e2e/test_live_readers.py executes it)."""

from __future__ import annotations

import nbformat

from cryptolake.local.paths import REPO_ROOT

NOTEBOOK = REPO_ROOT / "notebooks" / "lake.ipynb"


def test_the_notebook_is_valid_and_holds_no_outputs() -> None:
    notebook = nbformat.read(NOTEBOOK, as_version=4)
    nbformat.validate(notebook)
    run = [i for i, cell in enumerate(notebook.cells) if cell.get("outputs") or cell.get("execution_count")]
    assert not run, f"cells {run} hold outputs: clear them (Edit > Clear Outputs of All Cells) before a commit"
