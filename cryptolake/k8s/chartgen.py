"""Generate ``charts/cryptolake/files/settings.yaml`` from the one settings model.

The chart's templates range over this file to build every container's env, so no ``CRYPTOLAKE_*`` name is spelled
in the charts by hand; a test fails when the committed file no longer matches :func:`core.settings.describe`.
"""

from __future__ import annotations

from pathlib import Path

import yaml

from core.settings import ENV_PREFIX, describe
from cryptolake.local.paths import REPO_ROOT

SETTINGS_FILE = REPO_ROOT / "charts" / "cryptolake" / "files" / "settings.yaml"

_HEADER = (
    "# Generated from core/settings.py by `python -m cryptolake.k8s settings`: do not edit.\n"
    "# Every setting the ingestor and the Spark jobs read (local-mode ones left out), in declaration order.\n"
    "# Templates turn each into an env var: a value from .Values.settings or this default, or a Secret reference.\n"
)


def settings_text() -> str:
    entries = [
        {
            "name": item["env"].removeprefix(ENV_PREFIX).lower(),
            "env": item["env"],
            # A secret's code default is a local-mode convenience; in the charts it always comes from a Secret.
            "default": None if item["secret"] else item["default"],
            "secret": item["secret"],
            # A secret the code lets be empty (a Kafka password, for a broker that asks for none) may be absent.
            "optional": item["secret"] and item["default"] == "",
            "help": item["help"],
        }
        for item in describe()
        if not item["local"]
    ]
    return _HEADER + yaml.safe_dump({"settings": entries}, sort_keys=False, width=120)


def is_current(path: Path = SETTINGS_FILE) -> bool:
    return path.exists() and path.read_text() == settings_text()


def write(path: Path = SETTINGS_FILE) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(settings_text())
