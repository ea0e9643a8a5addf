"""Debian's pebble ACME server (+ pebble-challtestsrv as its DNS) on loopback, and a small
HTTPS load through the sandbox's nginx: shared by tests/test_ssl_e2e.py and benchmarks/acme.py.

pebble listens on 127.0.0.142 with a listener certificate made by adapto_ops.tls (its own
test CA, which certbot trusts through nginx.tls.acme_ca_file -> REQUESTS_CA_BUNDLE). Its DNS
answers every A query with the sandbox address 127.0.0.141, and its httpPort is the
sandbox's HTTP port: the http-01 challenge is fetched for real from nginx's ACME location.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import ssl
import subprocess
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any

import httpx

from adapto_ops.inventory.secrets import parse_dotenv
from adapto_ops.tls import write_ca, write_signed
from tests.operate_sandbox import SERVER_NAME, OpBox, Slot

SLOT = Slot("127.0.0.141", 2141, 8141, 8441, (3141, 3142))
ACME_ADDRESS = "127.0.0.142"
ACME_PORT, ACME_MGMT_PORT, DNS_PORT, CHALL_MGMT_PORT = 14000, 15000, 8053, 8055
ACME_DIR = f"https://{ACME_ADDRESS}:{ACME_PORT}/dir"
LOAD_CONNECTIONS = 8


# --- pebble ----------------------------------------------------------------------------------


class Pebble:
    """pebble + pebble-challtestsrv on 127.0.0.142, in ``base``; stopped by ``stop()``."""

    def __init__(self, base: Path, http_port: int) -> None:
        self.base = base
        self.ca = base / "listener-ca.pem"
        write_ca("adapto test: pebble listener CA", self.ca, base / "listener-ca.key")
        write_signed([ACME_ADDRESS], base / "listener.pem", base / "listener.key", self.ca,
                     base / "listener-ca.key", days=2)
        config = {"pebble": {
            "listenAddress": f"{ACME_ADDRESS}:{ACME_PORT}",
            "managementListenAddress": f"{ACME_ADDRESS}:{ACME_MGMT_PORT}",
            "certificate": str(base / "listener.pem"), "privateKey": str(base / "listener.key"),
            "httpPort": http_port, "tlsPort": 5001, "ocspResponderURL": "",
            "externalAccountBindingRequired": False}}
        (base / "pebble.json").write_text(json.dumps(config))
        self.procs: list[subprocess.Popen[bytes]] = []
        self._start(["pebble-challtestsrv", "-dns01", f"{ACME_ADDRESS}:{DNS_PORT}",
                     "-http01", "", "-https01", "", "-tlsalpn01", "",
                     "-management", f"{ACME_ADDRESS}:{CHALL_MGMT_PORT}",
                     "-defaultIPv4", SLOT.address, "-defaultIPv6", ""], "challtestsrv.log", {})
        self._wait(CHALL_MGMT_PORT)
        # No random validation sleeps, no rejected nonces, and no reuse of a valid
        # authorization (each order validates against nginx for real).
        self._start(["pebble", "-config", str(base / "pebble.json"),
                     "-dnsserver", f"{ACME_ADDRESS}:{DNS_PORT}"], "pebble.log",
                    {"PEBBLE_VA_NOSLEEP": "1", "PEBBLE_WFE_NONCEREJECT": "0",
                     "PEBBLE_AUTHZREUSE": "0"})
        self._wait(ACME_MGMT_PORT)
        self._wait(ACME_PORT)
        self.root = base / "pebble-root.pem"
        self.root.write_text(self.get(f"https://{ACME_ADDRESS}:{ACME_MGMT_PORT}/roots/0").text)

    def _start(self, argv: list[str], log: str, env: dict[str, str]) -> None:
        with (self.base / log).open("wb") as out:
            self.procs.append(subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT,
                                               stdin=subprocess.DEVNULL,
                                               env={**os.environ, **env}))

    def _wait(self, port: int) -> None:
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            try:
                socket.create_connection((ACME_ADDRESS, port), 0.2).close()
                return
            except OSError:
                time.sleep(0.1)
        raise RuntimeError(f"nothing listens on {ACME_ADDRESS}:{port}; see {self.base}")

    def get(self, url: str) -> httpx.Response:
        return httpx.get(url, verify=str(self.ca), timeout=10, trust_env=False)

    def dns(self, path: str, body: dict[str, Any]) -> None:
        """pebble-challtestsrv's management API (add-a, clear-a)."""
        httpx.post(f"http://{ACME_ADDRESS}:{CHALL_MGMT_PORT}/{path}", json=body, timeout=5,
                   trust_env=False).raise_for_status()

    def log_tail(self, lines: int = 30) -> str:
        """The end of pebble's and pebble-challtestsrv's logs (for a failed assertion)."""
        parts = []
        for name in ("pebble.log", "challtestsrv.log"):
            text = (self.base / name).read_text(errors="replace").splitlines()[-lines:]
            parts.append(f"\n--- {name}\n" + "\n".join(text))
        return "".join(parts)

    def stop(self) -> None:
        for proc in self.procs:
            proc.send_signal(signal.SIGTERM)
        for proc in self.procs:
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()


class Load:
    """GET /api/health and POST /api/echo on 8 TLS connections (certificate verified against
    pebble's root); bounded by time and by request count."""

    def __init__(self, box: OpBox, root: Path, max_seconds: float = 40,
                 max_requests: int = 20000) -> None:
        token = parse_dotenv((box.base / ".adapto" / "secrets.env").read_text())
        self.headers = {"Host": SERVER_NAME, "X-Adapto-Probe": token["ADAPTO_PROBE_TOKEN"]}
        self.root, self.max_seconds, self.max_requests = str(root), max_seconds, max_requests
        self.stop_event = threading.Event()
        self.total = 0
        self.failures: Counter[str] = Counter()
        # Each failure: method, request number on its connection (0: a new one), what.
        self.failure_details: list[str] = []
        self.resent_on_closed_keepalive = 0
        self.lock = threading.Lock()
        self.threads = [threading.Thread(target=self._worker, args=(i,), daemon=True)
                        for i in range(LOAD_CONNECTIONS)]

    def _worker(self, index: int) -> None:
        context = ssl.create_default_context(cafile=self.root)
        started = time.monotonic()
        # A new connection every few requests, so handshakes meet the reload too.
        while not self.stop_event.is_set() and time.monotonic() - started < self.max_seconds:
            with httpx.Client(verify=context, timeout=10, trust_env=False,
                              headers=self.headers) as client:
                for n in range(10):
                    with self.lock:
                        if self.total >= self.max_requests or self.stop_event.is_set():
                            return
                        self.total += 1
                    self._one(client, index, n)

    def _one(self, client: httpx.Client, index: int, n: int) -> None:
        """One request (n: its number on this connection); failures counted by kind."""
        # The address in the URL; the name as SNI (verified) and Host.
        url = f"https://{SLOT.address}:{SLOT.https_port}"
        method = "POST" if n % 2 else "GET"
        for attempt in (1, 2):
            try:
                if method == "POST":
                    r = client.post(f"{url}/api/echo", json={"n": index},
                                    extensions={"sni_hostname": SERVER_NAME})
                else:
                    r = client.get(f"{url}/api/health", extensions={"sni_hostname": SERVER_NAME})
            except httpx.RemoteProtocolError as exc:
                # nginx's old workers close idle keep-alive connections when a reload
                # starts; a request sent on one at that instant gets no response and was
                # never read. Browsers resend such a request once on a new connection
                # (Chromium: a reused socket closed before any response byte), so do we,
                # and count it; anything else, or a second failure, is a failure.
                if attempt == 1 and n > 0 and "without sending a response" in str(exc):
                    with self.lock:
                        self.resent_on_closed_keepalive += 1
                    continue
                self._fail(type(exc).__name__, f"{method} #{n} on its connection: {exc}")
                return
            except httpx.HTTPError as exc:
                self._fail(type(exc).__name__, f"{method} #{n} on its connection: "
                                               f"{type(exc).__name__}: {exc}")
                return
            if r.status_code != 200:
                self._fail(f"HTTP {r.status_code}", f"{method} #{n}: HTTP {r.status_code}")
            return

    def _fail(self, kind: str, detail: str) -> None:
        with self.lock:
            self.failures[kind] += 1
            self.failure_details.append(detail)

    def __enter__(self) -> Load:
        for t in self.threads:
            t.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop_event.set()
        for t in self.threads:
            t.join(30)


def letsencrypt(box: OpBox, pebble: Pebble) -> Path:
    """The environment with tls.mode letsencrypt against pebble (certbot state in the box)."""
    def change(env: dict[str, Any]) -> None:
        env["nginx"]["tls"] = {"mode": "letsencrypt", "acme_webroot": str(box.sdir / "acme"),
                               "acme_server": ACME_DIR, "acme_ca_file": str(pebble.ca),
                               "certbot_dir": str(box.sdir / "letsencrypt"),
                               "email": "ops@adapto.test"}
        env["health"]["ca_file"] = str(pebble.root)

    return box.write_variant("letsencrypt", change)
