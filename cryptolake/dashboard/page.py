"""The dashboard's page: as the server serves it (scripts and styles fetched), or as one file with everything in it."""

from __future__ import annotations

import json
from html import escape
from pathlib import Path
from typing import Any

STATIC = Path(__file__).parent / "static"
# The tags of index.html that fetch a static file, and what stands in for each in a self-contained file.
SCRIPTS = ("lightweight-charts.standalone.production.js", "dashboard.js")
STYLE = "dashboard.css"


def page() -> str:
    return (STATIC / "index.html").read_text()


def _script_tag(name: str) -> str:
    return f'<script src="static/{name}"></script>'


def self_contained(data: dict[str, Any], title: str) -> str:
    """The page with its scripts, its style and ``data`` (what /api/bars would answer) inlined: it fetches nothing,
    so it opens from a file, offline, and shows what the lake held when it was written."""
    html = page().replace("<title>cryptolake</title>", f"<title>{escape(title)}</title>")
    style = (STATIC / STYLE).read_text()
    html = html.replace(f'<link rel="stylesheet" href="static/{STYLE}">', f"<style>\n{style}</style>")
    # "</" inside a script would end it early: JSON allows the escaped form.
    inlined = json.dumps({"title": title, **data}).replace("</", "<\\/")
    html = html.replace(
        _script_tag(SCRIPTS[-1]), f"<script>window.CRYPTOLAKE_DATA = {inlined};</script>\n{_script_tag(SCRIPTS[-1])}"
    )
    for name in SCRIPTS:
        html = html.replace(_script_tag(name), f"<script>\n{(STATIC / name).read_text()}</script>")
    return html
