"""The dashboard's HTTP server: the page, its static files, and the JSON the page polls."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, ClassVar
from urllib.parse import parse_qs, urlsplit

from core.layers import BAR_INTERVALS
from cryptolake.dashboard.page import STATIC, page
from cryptolake.dashboard.view import LakeView

TYPES = {".js": "text/javascript", ".css": "text/css", ".html": "text/html"}


class _Handler(BaseHTTPRequestHandler):
    view: ClassVar[LakeView]

    def do_GET(self) -> None:
        url = urlsplit(self.path)
        if url.path == "/":
            self._reply(200, page().encode(), "text/html; charset=utf-8")
        elif url.path == "/api/bars":
            interval = parse_qs(url.query).get("interval", ["1m"])[0]
            if interval not in BAR_INTERVALS:
                self._json(400, {"error": f"interval must be one of {', '.join(BAR_INTERVALS)}"})
            else:
                self._json(200, self.view.bars[interval])
        elif url.path == "/api/health":
            self._json(200, self.view.health)
        elif url.path.startswith("/static/") and (STATIC / url.path.removeprefix("/static/")).suffix in TYPES:
            self._static(url.path.removeprefix("/static/"))
        else:
            self._reply(404, b"not found\n", "text/plain")

    def _static(self, name: str) -> None:
        # Only the files of the static folder itself: no path of the request's may lead out of it.
        files = {path.name: path for path in STATIC.iterdir()}
        if name not in files:
            self._reply(404, b"not found\n", "text/plain")
            return
        self._reply(200, files[name].read_bytes(), TYPES[files[name].suffix])

    def _json(self, status: int, body: dict[str, Any]) -> None:
        self._reply(status, json.dumps(body).encode(), "application/json")

    def _reply(self, status: int, data: bytes, content_type: str) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(data)))
        self.send_header("Cache-Control", "no-store")
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, format: str, *args: object) -> None:
        """A poll every few seconds would fill the terminal."""


def serve(view: LakeView, port: int, host: str = "127.0.0.1") -> ThreadingHTTPServer:
    """Serve the dashboard of ``view`` on ``host:port`` (0: a free port) from a thread; ``shutdown()`` stops it."""
    server = ThreadingHTTPServer((host, port), type("Handler", (_Handler,), {"view": view}))
    threading.Thread(target=server.serve_forever, name="dashboard-http", daemon=True).start()
    return server


def url(server: ThreadingHTTPServer) -> str:
    host, port = server.server_address[:2]
    return f"http://{host!s}:{port}/"
