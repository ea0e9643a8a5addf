"""SIGTERM drains: new connections refused, idle keep-alive connections left for the client
to close, a request on one answered with Connection: close (aiplatform/drain.py)."""

from __future__ import annotations

import signal
import socket
import time
from pathlib import Path

import pytest
from backend_support import uvicorn_server


def request(sock: socket.socket, path: str) -> bytes:
    """Send one keep-alive GET and read its whole answer (Content-Length)."""
    sock.sendall(f"GET {path} HTTP/1.1\r\nHost: t\r\nConnection: keep-alive\r\n\r\n".encode())
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        if not chunk:
            raise ConnectionError(f"closed before an answer (got {data!r})")
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    length = next(int(line.split(b":")[1]) for line in head.split(b"\r\n")
                  if line.lower().startswith(b"content-length:"))
    while len(body) < length:
        body += sock.recv(65536)
    return head


def test_an_idle_keepalive_connection_outlives_sigterm_and_its_next_answer_closes_it(
        tmp_path: Path) -> None:
    with uvicorn_server(tmp_path, None) as server:
        sock = socket.create_connection(("127.0.0.1", server.port), timeout=5)
        first = request(sock, "/api/health")
        assert b"200 OK" in first and b"connection: close" not in first.lower()
        server.proc.send_signal(signal.SIGTERM)
        time.sleep(0.5)  # nginx's next request on its pooled connection comes now
        with pytest.raises(ConnectionRefusedError):
            socket.create_connection(("127.0.0.1", server.port), timeout=2).close()
        assert server.proc.poll() is None, "exited with a keep-alive connection still open"
        second = request(sock, "/api/version")
        assert b"200 OK" in second and b"connection: close" in second.lower(), second
        assert sock.recv(1) == b""  # closed by the server after that answer
        sock.close()
        server.proc.wait(timeout=5)
        assert '"event": "drained"' in server.log()


def test_with_no_connection_open_it_stops_at_once(tmp_path: Path) -> None:
    with uvicorn_server(tmp_path, None) as server:
        started = time.monotonic()
        server.proc.send_signal(signal.SIGINT)
        server.proc.wait(timeout=5)
        assert time.monotonic() - started < 2.0


def test_a_connection_left_idle_is_given_up_after_the_drain_timeout(tmp_path: Path) -> None:
    with uvicorn_server(tmp_path, None, DRAIN_TIMEOUT_S="1") as server:
        sock = socket.create_connection(("127.0.0.1", server.port), timeout=5)
        request(sock, "/api/health")
        started = time.monotonic()
        server.proc.send_signal(signal.SIGTERM)
        server.proc.wait(timeout=6)
        took = time.monotonic() - started
        assert 0.9 < took < 3.0, took
        assert '"left": 1' in server.log()
        sock.close()
