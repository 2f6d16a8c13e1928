"""Access to the recorded exchange sessions in ../shared/fixtures, which stay there and are read in place."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

FIXTURES = Path(__file__).resolve().parents[2] / "shared" / "fixtures"


def recording(relative: str) -> Path:
    path = FIXTURES / relative
    if not path.exists():
        raise FileNotFoundError(f"{path} is missing: the tests expect ../shared/fixtures beside the repository")
    return path


def received_frames(relative: str) -> Iterator[str]:
    """The ``raw`` text of every ``recv`` line of a recording, in order."""
    with recording(relative).open() as lines:
        for line in lines:
            entry = json.loads(line)
            if entry["dir"] == "recv":
                yield entry["raw"]
