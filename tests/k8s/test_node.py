"""The node's CNI folder: its links to the pinned plugins survive a copied or moved cache and mend a dangling one."""

from __future__ import annotations

import shutil
from pathlib import Path

from cryptolake.k8s import tools
from tests.k8s import node

VERSION = "v1.10.0"


def _built_plugins(tools_dir: Path) -> dict[str, tools.Pin]:
    """Pins whose binaries exist already under ``tools_dir``, so nothing is built."""
    pins = {}
    for plugin in node.CNI_PLUGINS:
        pin = tools.Pin(f"cni-{plugin}", "github.com/containernetworking/plugins", VERSION, f"plugins/{plugin}")
        binary = tools_dir / "bin" / f"{pin.name}-{VERSION}"
        binary.parent.mkdir(parents=True, exist_ok=True)
        binary.write_text(plugin)
        pins[pin.name] = pin
    return pins


def test_cni_links_survive_a_moved_cache_and_replace_a_dangling_link(tmp_path: Path) -> None:
    first = tmp_path / "first"
    pins = _built_plugins(first)
    # A link left by a cache that was elsewhere: it points at nothing.
    stale = first / "cni" / VERSION / "bridge"
    stale.parent.mkdir(parents=True)
    stale.symlink_to(tmp_path / "gone" / "bin" / f"cni-bridge-{VERSION}")

    folder = node.cni_bin(pins, first)
    assert {p: (folder / p).read_text() for p in node.CNI_PLUGINS} == {p: p for p in node.CNI_PLUGINS}

    moved = tmp_path / "moved"
    shutil.copytree(first, moved, symlinks=True)
    shutil.rmtree(first)
    copied = moved / "cni" / VERSION
    assert {p: (copied / p).read_text() for p in node.CNI_PLUGINS} == {p: p for p in node.CNI_PLUGINS}
    before = {p: (copied / p).readlink() for p in node.CNI_PLUGINS}
    assert node.cni_bin(pins, moved) == copied
    assert {p: (copied / p).readlink() for p in node.CNI_PLUGINS} == before
