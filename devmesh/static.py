"""The UI's built files over HTTP on loopback: Envoy's upstream for every non-API path.

Envoy cannot serve a directory, and `direct_response` bodies are read once at config
load, so a rebuilt UI would need an Envoy restart and a template that lists each hashed
asset. A small file server keeps the template static and mirrors what a cluster does
(an nginx or object-store upstream behind the same route). It serves only files under
`root`, never directory listings, and sets the headers a single-page app wants: hashed
assets cached for a year, `index.html` revalidated, a strict same-origin CSP.

Run as `python -m devmesh.static --port N --root ui/dist`.
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import http.server
import io
import os
import signal
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import BinaryIO

from devmesh.launcher import Launcher
from devmesh.ports import LOOPBACK
from devmesh.process import ManagedProcess
from devmesh.readiness import http_status

NOT_BUILT_PAGE = (
    b"<!doctype html><title>weather-mesh</title>"
    b"<h1>The UI is not built</h1><p>Run <code>make ui</code> (or <code>make up</code>), "
    b"then reload. The gRPC API on this address works regardless.</p>"
)
# connect-src 'self': the page may call only the gateway it came from.
SECURITY_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'self'; img-src 'self' blob: data:; style-src 'self'; "
        "connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
}
IMMUTABLE = "public, max-age=31536000, immutable"
REVALIDATE = "no-cache"


def default_ui_root() -> Path:
    """`<repo>/ui/dist`, where `npm run build` (make ui) writes the bundle."""
    return Path(__file__).resolve().parents[1] / "ui" / "dist"


class UiRequestHandler(http.server.SimpleHTTPRequestHandler):
    """GET/HEAD for files under the root; `/` is index.html; no listings."""

    server_version = "weather-mesh-ui"
    sys_version = ""

    def list_directory(self, path: str | os.PathLike[str]) -> None:
        self.send_error(404, "Not found")
        return None

    def send_head(self) -> io.BytesIO | BinaryIO | None:
        index = Path(str(self.directory)) / "index.html"
        if not index.is_file():
            self.send_response(503)
            self.send_header("Content-Type", "text/html; charset=utf-8")
            self.send_header("Content-Length", str(len(NOT_BUILT_PAGE)))
            self.end_headers()
            if self.command == "GET":
                self.wfile.write(NOT_BUILT_PAGE)
            return None
        return super().send_head()

    def end_headers(self) -> None:
        for name, value in SECURITY_HEADERS.items():
            self.send_header(name, value)
        hashed_asset = self.path.startswith("/assets/")
        self.send_header("Cache-Control", IMMUTABLE if hashed_asset else REVALIDATE)
        super().end_headers()

    def log_message(self, format: str, *args: object) -> None:
        # Envoy's JSON access log already records every request once.
        return None


def serve(root: Path, port: int, host: str = LOOPBACK) -> None:
    handler = functools.partial(UiRequestHandler, directory=str(root))
    with http.server.ThreadingHTTPServer((host, port), handler) as server:
        server.daemon_threads = True
        server.serve_forever()


class StaticSite(Launcher):
    """The file server as a devmesh child."""

    name = "UI file server"
    readiness = "serving"
    start_timeout = 10.0
    stop_grace = 5.0

    def __init__(self, *, port: int, root: Path | None = None, log_path: Path | None = None):
        self.port = port
        self.root = root or default_ui_root()
        self._process = ManagedProcess(
            "ui",
            [sys.executable, "-m", "devmesh.static", "--port", str(port), "--root", str(self.root)],
            log_path=log_path,
        )

    @property
    def built(self) -> bool:
        return (self.root / "index.html").is_file()

    def is_ready(self) -> bool:
        return http_status(LOOPBACK, self.port, "/") is not None


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m devmesh.static", description=__doc__)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--root", type=Path, default=default_ui_root())
    arguments = parser.parse_args(argv)
    # devmesh stops children with SIGTERM: leave through SystemExit so the socket closes.
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(0))
    with contextlib.suppress(KeyboardInterrupt):
        serve(arguments.root.resolve(), arguments.port)
    return 0


if __name__ == "__main__":
    sys.exit(main())
