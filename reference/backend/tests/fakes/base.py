"""A tiny threaded JSON HTTP server on 127.0.0.1, the base of the fakes."""

from __future__ import annotations

import json
import ssl
import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs

# (status, JSON body) a route answers with.
Reply = tuple[int, Any]
Route = Callable[["Request"], Reply]


class Request:
    """What a fake's route sees of one HTTP request."""

    def __init__(self, method: str, path: str, headers: dict[str, str], body: bytes) -> None:
        self.method = method
        self.path = path
        self.headers = headers  # lower-cased names
        self.body = body

    def json(self) -> Any:
        """The body as JSON (None when it is not JSON)."""
        try:
            return json.loads(self.body or b"null")
        except ValueError:
            return None

    def form(self) -> dict[str, str]:
        """The body as an url-encoded form (first value of each field)."""
        return {k: v[0] for k, v in parse_qs(self.body.decode()).items()}


class FakeServer:
    """Serves `handle(request)` on 127.0.0.1:<free port> in a thread; use as a context manager."""

    def __init__(self, tls: ssl.SSLContext | None = None) -> None:
        fake = self
        self.scheme = "https" if tls else "http"

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                self._serve()

            def do_GET(self) -> None:
                self._serve()

            def _serve(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                request = Request(
                    self.command,
                    self.path,
                    {k.lower(): v for k, v in self.headers.items()},
                    self.rfile.read(length) if length else b"",
                )
                status, body = fake.handle(request)
                payload = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            def log_message(self, format: str, *args: Any) -> None:
                # Quiet: the tests assert on recorded calls, not on a log.
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        if tls:
            self._server.socket = tls.wrap_socket(self._server.socket, server_side=True)
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self.lock = threading.Lock()

    @property
    def url(self) -> str:
        """http(s)://127.0.0.1:<port>"""
        host, port = self._server.server_address[:2]
        return f"{self.scheme}://{host}:{port}"

    def handle(self, request: Request) -> Reply:
        """Answer one request; subclasses route on request.path."""
        return 404, {"error": "not found"}

    def start(self) -> FakeServer:
        """Start serving in a background thread."""
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving and close the socket."""
        self._server.shutdown()
        self._server.server_close()

    def __enter__(self) -> FakeServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def self_signed_tls(folder: str) -> tuple[ssl.SSLContext, str]:
    """A server TLS context for 127.0.0.1 with a fresh self-signed certificate.

    Returns the context and the certificate's path (what a client trusts as
    its CA file). Needs the openssl command.
    """
    import subprocess
    from pathlib import Path

    cert, key = Path(folder) / "fake-ca.pem", Path(folder) / "fake-key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
         "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1",
         "-keyout", str(key), "-out", str(cert)],
        check=True, capture_output=True,
    )
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    return context, str(cert)
