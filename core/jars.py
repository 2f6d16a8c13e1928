"""Fetch the pinned Spark jars of ``spark-jars.txt`` from Maven Central, checking each one's sha256.

Standard library only, so the image build can run this file before the project is installed.
"""

from __future__ import annotations

import argparse
import hashlib
import sys
import urllib.request
from dataclasses import dataclass
from pathlib import Path

MAVEN_CENTRAL = "https://repo1.maven.org/maven2"
DEFAULT_LIST = Path(__file__).resolve().parents[1] / "spark-jars.txt"


@dataclass(frozen=True)
class Jar:
    group: str
    artifact: str
    version: str
    sha256: str
    size: int

    @property
    def filename(self) -> str:
        return f"{self.artifact}-{self.version}.jar"

    @property
    def url(self) -> str:
        return f"{MAVEN_CENTRAL}/{self.group.replace('.', '/')}/{self.artifact}/{self.version}/{self.filename}"


def read_pins(path: Path = DEFAULT_LIST) -> list[Jar]:
    jars = []
    for line in path.read_text().splitlines():
        if not line.strip() or line.startswith("#"):
            continue
        coords, sha256, size = line.split()
        group, artifact, version = coords.split(":")
        jars.append(Jar(group, artifact, version, sha256, int(size)))
    return jars


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def fetch(dest: Path, pins: list[Jar]) -> list[Path]:
    """Make ``dest`` hold every pinned jar; jars already there with the right hash are not downloaded again."""
    dest.mkdir(parents=True, exist_ok=True)
    paths = []
    for jar in pins:
        target = dest / jar.filename
        if not (target.exists() and _sha256(target) == jar.sha256):
            _download(jar, target)
        paths.append(target)
    return paths


def _download(jar: Jar, target: Path) -> None:
    partial = target.with_suffix(".part")
    try:
        with urllib.request.urlopen(jar.url, timeout=60) as response:  # noqa: S310 - fixed https URL
            partial.write_bytes(response.read())
    except OSError as exc:
        raise RuntimeError(f"download of {jar.url} failed: {exc}") from exc
    got = _sha256(partial)
    if got != jar.sha256:
        partial.unlink()
        raise RuntimeError(f"{jar.url}: sha256 {got} does not match the pinned {jar.sha256}")
    partial.replace(target)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--list", type=Path, default=DEFAULT_LIST, help="pin file (default: %(default)s)")
    parser.add_argument("--dest", type=Path, required=True, help="folder to hold the jars")
    args = parser.parse_args(argv)
    try:
        paths = fetch(args.dest, read_pins(args.list))
    except RuntimeError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(f"{len(paths)} Spark jars in {args.dest}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
