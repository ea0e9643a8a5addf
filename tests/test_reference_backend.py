"""The bundled reference backend (reference/backend), run under real uvicorn.

Each server is a subprocess started the way the PM2 file starts an instance:
uvicorn ``app:app`` from inside a copy of the folder, with PORT and
ADAPTO_INSTANCE in its environment. A copy, so a test can drop RELEASE or
marker files next to app.py without touching the repository.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("uvicorn")
pytest.importorskip("websockets")

from websockets.sync.client import connect

try:
    import httpx
except ImportError:  # urllib below does the same job, only more verbosely
    httpx = None  # type: ignore[assignment]

pytestmark = pytest.mark.timeout(60)

SOURCE = Path(__file__).resolve().parent.parent / "reference" / "backend"
START_TIMEOUT = 15.0
REQUEST_TIMEOUT = 10.0
SECRET = "anon-key-value-that-must-never-leak"


@dataclass
class Response:
    status: int
    body: Any
    text: str


def request(method: str, url: str, body: bytes | None = None) -> Response:
    headers = {"content-type": "application/json"} if body is not None else {}
    if httpx is not None:
        answer = httpx.request(method, url, content=body, headers=headers, timeout=REQUEST_TIMEOUT)
        status, text = answer.status_code, answer.text
    else:
        req = urllib.request.Request(url, data=body, method=method, headers=headers)
        try:
            with urllib.request.urlopen(req, timeout=REQUEST_TIMEOUT) as answer:
                status, text = answer.status, answer.read().decode()
        except urllib.error.HTTPError as error:
            status, text = error.code, error.read().decode()
    try:
        parsed = json.loads(text) if text else None
    except json.JSONDecodeError:
        parsed = None
    return Response(status, parsed, text)


def free_port() -> int:
    # The port could be taken again before uvicorn binds it; on loopback in a
    # test run that race is rare enough, and a loss shows as a failed start.
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class Server:
    proc: subprocess.Popen[bytes]
    port: int
    instance: str
    log_path: Path

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=5)


def app_copy(tmp_path: Path, release: str | None = None, markers: tuple[str, ...] = ()) -> Path:
    folder = tmp_path / "backend"
    shutil.copytree(SOURCE, folder, ignore=shutil.ignore_patterns(".venv", "__pycache__"))
    # The repository copy must not carry switches of its own into the tests.
    for name in ("RELEASE", "FAIL_HEALTH", "CRASH_ON_START"):
        (folder / name).unlink(missing_ok=True)
    if release is not None:
        (folder / "RELEASE").write_text(f"  {release}\n")
    for marker in markers:
        (folder / marker).touch()
    return folder


def launch(folder: Path, extra_env: dict[str, str] | None = None) -> Server:
    port = free_port()
    instance = f"test-backend-{port}"
    env = {k: v for k, v in os.environ.items() if k not in ("ADAPTO_FAIL_HEALTH", "SUPABASE_URL")}
    env.update(
        {
            "PORT": str(port),
            "ADAPTO_INSTANCE": instance,
            "SUPABASE_URL": "http://127.0.0.1:54321",
            "SUPABASE_ANON_KEY": SECRET,
            **(extra_env or {}),
        }
    )
    log_path = folder.parent / f"uvicorn-{port}.log"
    with log_path.open("wb") as log:
        proc = subprocess.Popen(
            # As the PM2 file does: `uvicorn app:app` with the app folder as cwd.
            [sys.executable, "-m", "uvicorn", "app:app", "--host", "127.0.0.1", f"--port={port}"],
            cwd=folder,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    return Server(proc, port, instance, log_path)


def wait_ready(server: Server) -> None:
    """Until the server answers health at all (200 or 503), or fail."""
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        if server.proc.poll() is not None:
            pytest.fail(f"uvicorn exited with {server.proc.returncode}:\n{server.log()}")
        try:
            request("GET", server.url + "/api/health")
            return
        except OSError:
            pass
        except Exception as error:  # httpx's connect errors are not OSError
            if httpx is None or not isinstance(error, httpx.TransportError):
                raise
        time.sleep(0.1)
    server.stop()
    pytest.fail(f"uvicorn did not answer within {START_TIMEOUT}s:\n{server.log()}")


def start(folder: Path, extra_env: dict[str, str] | None = None) -> Server:
    server = launch(folder, extra_env)
    wait_ready(server)
    return server


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """One healthy instance of release r-42 for the read-only checks."""
    running = start(app_copy(tmp_path_factory.mktemp("shared"), release="r-42"))
    yield running
    running.stop()


def test_health_reports_release_instance_and_process(server: Server) -> None:
    answer = request("GET", server.url + "/api/health")
    assert answer.status == 200
    body = answer.body
    assert body["status"] == "ok"
    assert body["release"] == "r-42"  # stripped of the file's whitespace
    assert body["instance"] == server.instance
    assert body["pid"] == server.proc.pid
    assert body["port"] == server.port
    assert isinstance(body["uptime_s"], float) and body["uptime_s"] >= 0
    assert body["config"]["SUPABASE_URL"] is True
    assert body["config"]["SUPABASE_ANON_KEY"] is True
    assert body["config"]["TELEGRAM_BOT_TOKEN"] is False


def test_secret_values_appear_nowhere(server: Server) -> None:
    for path in ("/api/health", "/api/version", "/api/nope"):
        assert SECRET not in request("GET", server.url + path).text
    assert SECRET not in server.log()


def test_version(server: Server) -> None:
    answer = request("GET", server.url + "/api/version")
    assert answer.status == 200
    assert answer.body["release"] == "r-42"


def test_auth_ping(server: Server) -> None:
    answer = request("GET", server.url + "/api/auth/ping")
    assert (answer.status, answer.body) == (200, {"ok": True})


@pytest.mark.parametrize("path", ["/api/nope", "/api/health/extra", "/", "/index.html"])
def test_unknown_paths_are_json_404(server: Server, path: str) -> None:
    answer = request("GET", server.url + path)
    assert answer.status == 404
    assert answer.body == {"error": "not found", "path": path}


def test_wrong_method_is_405(server: Server) -> None:
    assert request("POST", server.url + "/api/health", b"{}").status == 405
    assert request("GET", server.url + "/api/echo").status == 405


def test_echo_returns_the_json_body(server: Server) -> None:
    payload = {"text": "привет", "n": [1, 2.5, None], "nested": {"ok": True}}
    answer = request("POST", server.url + "/api/echo", json.dumps(payload).encode())
    assert answer.status == 200
    assert answer.body == payload


def test_echo_refuses_bad_and_large_bodies(server: Server) -> None:
    assert request("POST", server.url + "/api/echo", b"not json").status == 400
    too_big = json.dumps({"pad": "x" * (1024 * 1024)}).encode()
    assert request("POST", server.url + "/api/echo", too_big).status == 413


def test_slow_sleeps_and_caps(server: Server) -> None:
    started = time.monotonic()
    answer = request("GET", server.url + "/api/slow?ms=300")
    assert answer.status == 200
    assert answer.body == {"slept_ms": 300}
    assert time.monotonic() - started >= 0.3
    assert request("GET", server.url + "/api/slow?ms=soon").status == 400


def test_requests_are_logged_one_line_each(server: Server) -> None:
    request("GET", server.url + "/api/version?token=abc")
    lines: list[dict[str, Any]] = []
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        lines = [json.loads(line) for line in server.log().splitlines()
                 if line.startswith("{") and '"path": "/api/version"' in line]
        if lines:
            break
        time.sleep(0.05)
    assert lines, server.log()
    line = lines[-1]
    assert (line["method"], line["path"], line["status"]) == ("GET", "/api/version", 200)
    assert line["level"] == "info" and line["request_id"] and line["ms"] >= 0
    assert "token=abc" not in server.log()  # the query string may carry a token


def test_websocket_hello_then_exact_echo(server: Server) -> None:
    for path in ("/ws", "/ws/chat"):
        with connect(f"ws://127.0.0.1:{server.port}{path}", open_timeout=REQUEST_TIMEOUT) as ws:
            hello = json.loads(ws.recv(timeout=REQUEST_TIMEOUT))
            assert hello == {"type": "hello", "release": "r-42", "instance": server.instance}
            for text in ("ping", '{"type":"message","text":"hi"}', "  padded\n", "юникод ✓"):
                ws.send(text)
                assert ws.recv(timeout=REQUEST_TIMEOUT) == text
            ws.send(b"\x00\xffbinary")
            assert ws.recv(timeout=REQUEST_TIMEOUT) == b"\x00\xffbinary"


def test_websocket_elsewhere_is_refused(server: Server) -> None:
    with pytest.raises(Exception, match="403"):
        connect(f"ws://127.0.0.1:{server.port}/wsx", open_timeout=REQUEST_TIMEOUT)


def test_release_defaults_to_dev(tmp_path: Path) -> None:
    running = start(app_copy(tmp_path))
    try:
        assert request("GET", running.url + "/api/health").body["release"] == "dev"
    finally:
        running.stop()


def test_fail_health_file_gives_503(tmp_path: Path) -> None:
    running = start(app_copy(tmp_path, release="bad-1", markers=("FAIL_HEALTH",)))
    try:
        answer = request("GET", running.url + "/api/health")
        assert answer.status == 503
        assert answer.body["status"] == "failing"
        # Checked per request: removing the marker heals the running instance.
        (tmp_path / "backend" / "FAIL_HEALTH").unlink()
        assert request("GET", running.url + "/api/health").status == 200
    finally:
        running.stop()


def test_fail_health_env_gives_503(tmp_path: Path) -> None:
    running = start(app_copy(tmp_path), {"ADAPTO_FAIL_HEALTH": "1"})
    try:
        answer = request("GET", running.url + "/api/health")
        assert answer.status == 503
        assert answer.body["status"] == "failing"
    finally:
        running.stop()


def test_crash_on_start_never_comes_up(tmp_path: Path) -> None:
    server = launch(app_copy(tmp_path, markers=("CRASH_ON_START",)))
    try:
        assert server.proc.wait(timeout=START_TIMEOUT) == 3
    finally:
        server.stop()
    assert "CRASH_ON_START" in server.log()


def test_sigterm_lets_an_in_flight_request_finish(tmp_path: Path) -> None:
    running = start(app_copy(tmp_path, release="r-slow"))
    results: list[Response | BaseException] = []

    def slow_request() -> None:
        try:
            results.append(request("GET", running.url + "/api/slow?ms=1500"))
        except BaseException as error:
            results.append(error)

    try:
        worker = threading.Thread(target=slow_request, daemon=True)
        started = time.monotonic()
        worker.start()
        # Long enough for uvicorn to have read the request, well inside the 1.5 s sleep.
        time.sleep(0.5)
        assert not results, "the slow request finished before SIGTERM was sent"
        running.proc.send_signal(signal.SIGTERM)
        worker.join(timeout=REQUEST_TIMEOUT)
        assert not worker.is_alive()
        assert len(results) == 1
        outcome = results[0]
        assert isinstance(outcome, Response), f"request failed: {outcome!r}\n{running.log()}"
        assert outcome.status == 200
        assert outcome.body == {"slept_ms": 1500}
        assert time.monotonic() - started >= 1.5
        # ...and then the server shuts down through the lifespan instead of
        # dying mid-request. uvicorn re-raises the signal once it is done, so
        # the exit status is -SIGTERM either way: the log tells the difference.
        assert running.proc.wait(timeout=10) in (0, -signal.SIGTERM)
        log = running.log()
        events = [json.loads(line) for line in log.splitlines() if line.startswith("{")]
        slow = [i for i, e in enumerate(events)
                if (e.get("path"), e.get("status")) == ("/api/slow", 200)]
        stopping = [i for i, e in enumerate(events)
                    if (e.get("event"), e.get("release")) == ("stopping", "r-slow")]
        assert slow and stopping, log
        assert "Finished server process" in log
        # The slow request was answered before the shutdown completed.
        assert slow[0] < stopping[0]
    finally:
        running.stop()
