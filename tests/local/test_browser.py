"""Chromium for the browser test: used where it is, installed with apt-get only when missing."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import pytest

from cryptolake.local import browser
from cryptolake.local.procs import ServiceError


def test_an_installed_chromium_is_used_as_it_is(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    installed = tmp_path / "chromium"
    installed.touch()
    monkeypatch.setattr(browser, "CHROMIUM", installed)
    monkeypatch.setattr(subprocess, "run", lambda *a, **k: pytest.fail("nothing to install"))
    assert browser.install_chromium() == installed


def test_without_root_a_missing_chromium_says_how_to_install_it(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setattr(browser, "CHROMIUM", tmp_path / "chromium")
    monkeypatch.setattr(browser.os, "geteuid", lambda: 1000)
    with pytest.raises(ServiceError, match="sudo apt-get install chromium"):
        browser.install_chromium()


def test_a_failed_apt_get_is_a_clear_error(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setattr(browser, "CHROMIUM", tmp_path / "chromium")
    monkeypatch.setattr(browser.os, "geteuid", lambda: 0)
    ran: list[list[str]] = []

    def apt(command: list[str], **_: Any) -> subprocess.CompletedProcess[str]:
        ran.append(command)
        return subprocess.CompletedProcess(command, 100, "", "E: Unable to locate package chromium")

    monkeypatch.setattr(subprocess, "run", apt)
    with pytest.raises(ServiceError, match="apt-get update` failed: E: Unable to locate package chromium"):
        browser.install_chromium()
    assert ran == [["apt-get", "update"]]
