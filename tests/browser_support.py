"""What the browser e2e tests need besides the sandbox: a real frontend build,
headless Chromium (Debian's package) driven by Playwright, pages served from
other origins.

Chromium resolves the sandbox's server name to its loopback address itself
(``--host-resolver-rules``), so pages use the site's real name, SNI and Host
header, exactly as a visitor's browser would; the sandbox's self-signed
certificate is accepted with ``ignore_https_errors``. Playwright's own browser
downloads are never used (they are not reachable here anyway).
"""

from __future__ import annotations

import contextlib
import http.server
import os
import shutil
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from tests.e2e_support import REPO

CHROMIUM = Path(os.environ.get("ADAPTO_CHROMIUM", "/usr/bin/chromium"))
FRONTEND = REPO / "reference" / "frontend"


def chromium_args(server_name: str, address: str) -> list[str]:
    """Flags for a quiet, offline headless Chromium that sends ``server_name`` to ``address``."""
    return ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
            "--disable-component-update", "--disable-sync", "--no-first-run",
            f"--host-resolver-rules=MAP {server_name} {address}"]


def missing_browser() -> str | None:
    """Why the browser tests cannot run here, or None."""
    if not CHROMIUM.exists():
        return f"no Chromium at {CHROMIUM} (apt-get install chromium; scripts/setup.sh does)"
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        return "playwright is not installed (pip install -e .[test])"
    if shutil.which("npm") is None:
        return "npm is needed to build reference/frontend"
    return None


def build_frontend(out_dir: Path) -> Path:
    """``npm ci`` (if node_modules is missing), then a Vite build of reference/frontend.

    Building into ``out_dir`` leaves the working tree's dist/ alone.
    """
    def run(*argv: str) -> None:
        result = subprocess.run(list(argv), cwd=FRONTEND, capture_output=True, text=True,
                                timeout=300, env={**os.environ, "VITE_RELEASE": "browser-e2e"})
        if result.returncode != 0:
            raise RuntimeError(f"{' '.join(argv)} failed: {result.stderr[-2000:]}")

    if not (FRONTEND / "node_modules" / ".bin" / "vite").exists():
        run("npm", "ci", "--no-audit", "--no-fund")
    run("npx", "vite", "build", "--outDir", str(out_dir), "--emptyOutDir")
    return out_dir


class _Pages(http.server.BaseHTTPRequestHandler):
    pages: dict[str, str] = {}

    def do_GET(self) -> None:
        body = self.pages.get(self.path.split("?")[0])
        if body is None:
            self.send_error(404)
            return
        data = body.encode()
        self.send_response(200)
        self.send_header("Content-Type", "text/html; charset=utf-8")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, format: str, *args: Any) -> None:
        return  # quiet: pytest shows failures, not access lines


@contextlib.contextmanager
def page_server(address: str, port: int, pages: dict[str, str]) -> Iterator[str]:
    """Serve ``pages`` (path -> HTML) on http://address:port; yields that origin."""
    handler = type("Pages", (_Pages,), {"pages": pages})
    server = http.server.ThreadingHTTPServer((address, port), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://{address}:{port}"
    finally:
        server.shutdown()
        server.server_close()


def widget_page(script_origin: str, widget_id: str) -> str:
    """A third-party page that embeds the platform's widget."""
    return ("<!doctype html><html><head><meta charset='utf-8'><title>A shop</title></head>"
            "<body><h1>A shop that embeds the chat widget</h1>"
            f"<script src='{script_origin}/widget.js' data-widget-id='{widget_id}' defer></script>"
            "</body></html>")

