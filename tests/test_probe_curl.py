"""The curl one-try probe: the command it builds and its output, run for real on loopback.

A small HTTP server on 127.0.0.201 (this module's slot) answers 200 and records the
probe header; one URL points at a port nothing listens on.
"""

from __future__ import annotations

import http.server
import shutil
import subprocess
import threading
from collections.abc import Iterator

import pytest

from adapto_ops.commands.probe import NO_CURL, curl_once, parse_curl

ADDRESS = "127.0.0.201"
TOKEN = "s3cret-probe-token"


class _Handler(http.server.BaseHTTPRequestHandler):
    seen: list[tuple[str, str | None, str | None]] = []

    def do_GET(self) -> None:
        self.seen.append((self.path, self.headers.get("X-Adapto-Probe"),
                          self.headers.get("Host")))
        code = 503 if self.path == "/down" else 200
        self.send_response(code)
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"ok")

    def log_message(self, format: str, *args: object) -> None:
        return


@pytest.fixture
def server() -> Iterator[int]:
    httpd = http.server.ThreadingHTTPServer((ADDRESS, 0), _Handler)
    _Handler.seen = []
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield httpd.server_address[1]
    finally:
        httpd.shutdown()
        httpd.server_close()


def closed_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind((ADDRESS, 0))
        return int(sock.getsockname()[1])


def test_the_token_never_reaches_argv_and_names_are_resolved() -> None:
    script = curl_once([("https://127.0.0.5:8443/api/health", "site.test"),
                        ("http://127.0.0.5:3001/api/health", "")], with_token=True)
    assert TOKEN not in script and "-H @-" in script
    assert "--resolve site.test:8443:127.0.0.5" in script
    assert "https://site.test:8443/api/health" in script


def test_no_curl_is_none() -> None:
    assert parse_curl(f"{NO_CURL}\n", [("http://x:1/", "")]) is None


@pytest.mark.skipif(shutil.which("curl") is None, reason="curl is not installed")
def test_one_try_of_each_url_for_real(server: int) -> None:
    urls = [(f"http://{ADDRESS}:{server}/api/health", "site.test"),
            (f"http://{ADDRESS}:{server}/ok", ""),
            (f"http://{ADDRESS}:{server}/down", ""),
            (f"http://{ADDRESS}:{closed_port()}/api/health", "")]
    proc = subprocess.run(["sh", "-c", curl_once(urls, with_token=True)], input=TOKEN,
                          capture_output=True, text=True, timeout=30)
    results = parse_curl(proc.stdout, urls)
    assert results is not None
    assert [r.ok for r in results] == [True, True, False, False]
    assert results[2].error == "HTTP 503" and results[3].error == "no answer"
    assert all(r.ms is not None and r.ms > 0 for r in results[:2])
    assert sorted(_Handler.seen) == sorted([
        ("/api/health", TOKEN, f"site.test:{server}"), ("/ok", TOKEN, f"{ADDRESS}:{server}"),
        ("/down", TOKEN, f"{ADDRESS}:{server}")])
