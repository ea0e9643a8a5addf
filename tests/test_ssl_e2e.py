"""`adapto ssl` against a real ACME server: Debian's pebble on loopback, real certbot.

pebble listens on 127.0.0.142 with a listener certificate made by adapto_ops.tls
(its own test CA, which certbot trusts through nginx.tls.acme_ca_file ->
REQUESTS_CA_BUNDLE). Its DNS is pebble-challtestsrv, answering every A query with
the sandbox address 127.0.0.141, and its httpPort is the sandbox's HTTP port: the
http-01 challenge is fetched for real from nginx's ACME location on the sandbox.
certbot runs on the sandbox host through adapto over SSH, its state under the
sandbox folder (tls.certbot_dir), never /etc/letsencrypt.

The sandbox is deployed with its usual CA-signed certificate (tls.mode self-signed);
the tests then switch the environment to letsencrypt through an inventory variant,
as an operator moving a site to Let's Encrypt would.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import signal
import socket
import ssl
import statistics
import subprocess
import threading
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from adapto_ops.inventory.secrets import parse_dotenv
from adapto_ops.tls import write_ca, write_signed
from tests.e2e_support import Cli, cli_env, run_to_files, said, sandbox_marks
from tests.operate_sandbox import ENV, SERVER_NAME, OpBox, Slot, deployed_sandbox

pytestmark = [pytest.mark.e2e, pytest.mark.slow,
              *sandbox_marks(("certbot", "pebble", "pebble-challtestsrv", "openssl"))]

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

    def stop(self) -> None:
        for proc in self.procs:
            proc.send_signal(signal.SIGTERM)
        for proc in self.procs:
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()


@pytest.fixture(scope="module")
def pebble(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Pebble]:
    server = Pebble(tmp_path_factory.mktemp("pebble"), SLOT.http_port)
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="module")
def box(tmp_path_factory: pytest.TempPathFactory, pebble: Pebble) -> Iterator[OpBox]:
    with deployed_sandbox(tmp_path_factory.mktemp("ssl"), SLOT) as deployed:
        yield deployed


def letsencrypt(box: OpBox, pebble: Pebble) -> Path:
    """The environment with tls.mode letsencrypt against pebble (certbot state in the box)."""
    def change(env: dict[str, Any]) -> None:
        env["nginx"]["tls"] = {"mode": "letsencrypt", "acme_webroot": str(box.sdir / "acme"),
                               "acme_server": ACME_DIR, "acme_ca_file": str(pebble.ca),
                               "certbot_dir": str(box.sdir / "letsencrypt"),
                               "email": "ops@adapto.test"}
        env["health"]["ca_file"] = str(pebble.root)

    return box.write_variant("letsencrypt", change)


def ssl_cli(box: OpBox, inventory: Path, *args: str, timeout: float = 300) -> Cli:
    import sys

    argv = [sys.executable, "-m", "adapto_ops", *args, "-e", ENV, "-i", str(inventory)]
    return run_to_files(argv, cli_env(), timeout)


def served(box: OpBox) -> bytes:
    context = ssl.create_default_context()
    context.check_hostname, context.verify_mode = False, ssl.CERT_NONE
    with socket.create_connection((SLOT.address, SLOT.https_port), 5) as raw, \
            context.wrap_socket(raw, server_hostname=SERVER_NAME) as tls:
        return tls.getpeercert(binary_form=True) or b""


def served_sha(box: OpBox) -> str:
    return hashlib.sha256(served(box)).hexdigest()


def issuer(der: bytes) -> str:
    from cryptography import x509

    return x509.load_der_x509_certificate(der).issuer.rfc4514_string()


def ensure_issued(box: OpBox, pebble: Pebble) -> Path:
    """The letsencrypt variant, with a pebble certificate served (issued once per module)."""
    inventory = letsencrypt(box, pebble)
    if "Pebble" not in issuer(served(box)):
        result = ssl_cli(box, inventory, "ssl", "issue", "--yes")
        assert result.returncode == 0, said(result)
    return inventory


# --- issue ------------------------------------------------------------------------------------


def test_dry_run_changes_nothing(box: OpBox, pebble: Pebble) -> None:
    inventory = letsencrypt(box, pebble)
    before = served_sha(box)
    result = ssl_cli(box, inventory, "ssl", "issue", "--dry-run")
    assert result.returncode == 0, said(result)
    assert "certbot certonly" in result.stdout and f"--server {ACME_DIR}" in result.stdout
    assert "--deploy-hook" in result.stdout and "nothing was changed" in result.stdout
    assert not (box.sdir / "letsencrypt").exists()
    assert not (box.sdir / "cron.d").exists()
    assert served_sha(box) == before


def test_issue_serves_pebble_certificate(box: OpBox, pebble: Pebble) -> None:
    inventory = letsencrypt(box, pebble)
    started = time.perf_counter()
    result = ssl_cli(box, inventory, "ssl", "issue", "--yes", "--json")
    took = time.perf_counter() - started
    assert result.returncode == 0, said(result)
    print(f"\nACME issue (adapto ssl issue, pebble): {took:.2f} s")
    live = box.sdir / "letsencrypt" / "live" / SERVER_NAME
    assert (live / "fullchain.pem").is_symlink()  # certbot's lineage, not ours
    der = served(box)
    assert "Pebble Intermediate" in issuer(der)
    assert hashlib.sha256(der).hexdigest() == _file_sha(live / "fullchain.pem")
    site = box.site_config.read_text()
    assert f"ssl_certificate {live}/fullchain.pem;" in site
    assert f"ssl_certificate_key {live}/privkey.pem;" in site
    # The deploy hook: nginx -t, then the sandbox's signal-mode reload.
    hook = (box.sdir / "letsencrypt" / "adapto-nginx-reload.sh").read_text()
    assert " -t -q" in hook and "-s reload" in hook
    renewal = (box.sdir / "letsencrypt" / "renewal" / f"{SERVER_NAME}.conf").read_text()
    assert "adapto-nginx-reload.sh" in renewal and ACME_DIR in renewal


def _file_sha(path: Path) -> str:
    from cryptography import x509
    from cryptography.hazmat.primitives.serialization import Encoding

    cert = x509.load_pem_x509_certificates(path.read_bytes())[0]
    return hashlib.sha256(cert.public_bytes(Encoding.DER)).hexdigest()


def test_status_and_health_read_its_expiry(box: OpBox, pebble: Pebble) -> None:
    inventory = ensure_issued(box, pebble)
    from cryptography import x509

    not_after = x509.load_der_x509_certificate(served(box)).not_valid_after_utc
    expected = (not_after.timestamp() - time.time()) / 86400
    status = ssl_cli(box, inventory, "ssl", "status", "--json")
    assert status.returncode == 0, said(status)
    document = json.loads(status.stdout)
    [row] = document["domains"]
    assert row["domain"] == SERVER_NAME and row["status"] == "pass"
    assert abs(row["live_days"] - expected) < 0.2 and abs(row["file_days"] - expected) < 0.2
    health = ssl_cli(box, inventory, "health", "--json", timeout=120)
    checks = json.loads(health.stdout)["checks"]
    [cert] = checks["certificate:daysLeft"]
    assert cert["status"] == "pass", said(health)
    assert abs(cert["observedValue"] - expected) < 0.2


def test_cron_entry_runs_its_renew_command(box: OpBox, pebble: Pebble) -> None:
    """No cron daemon may pick a rehearsal's entry up: run the exact command it holds."""
    ensure_issued(box, pebble)
    from adapto_ops.commands.certbot import cron_command

    text = (box.sdir / "cron.d" / "adapto-certbot-renew").read_text()
    command = cron_command(text)
    assert command and "certbot renew" in command and "--config-dir" in command
    assert re.search(r"^\S+ \S+ \* \* \* root ", text, re.M)
    before = served_sha(box)
    run = subprocess.run(["sh", "-c", command], capture_output=True, text=True, timeout=120,
                         check=False)
    assert run.returncode == 0, run.stdout + run.stderr
    assert "not yet due for renewal" in run.stdout + run.stderr
    assert served_sha(box) == before


# --- renewal under load -------------------------------------------------------------------


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
        self.certificates: set[str] = set()
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
                    url = f"https://{SERVER_NAME}:{SLOT.https_port}"
                    try:
                        if n % 2:
                            r = client.post(f"{url}/api/echo", json={"n": index},
                                            extensions={"sni_hostname": SERVER_NAME})
                        else:
                            r = client.get(f"{url}/api/health",
                                           extensions={"sni_hostname": SERVER_NAME})
                        if r.status_code != 200:
                            with self.lock:
                                self.failures[f"HTTP {r.status_code}"] += 1
                    except httpx.HTTPError as exc:
                        with self.lock:
                            self.failures[type(exc).__name__] += 1

    def __enter__(self) -> Load:
        for t in self.threads:
            t.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop_event.set()
        for t in self.threads:
            t.join(30)


@pytest.fixture
def resolve_to_sandbox(monkeypatch: pytest.MonkeyPatch) -> None:
    """httpx connects by name (for SNI and the certificate check): map it to the sandbox."""
    real = socket.getaddrinfo

    def fake(host: Any, *args: Any, **kwargs: Any) -> Any:
        return real(SLOT.address if host == SERVER_NAME else host, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", fake)


def test_forced_renewal_under_load_fails_no_request(box: OpBox, pebble: Pebble,
                                                    resolve_to_sandbox: None) -> None:
    inventory = ensure_issued(box, pebble)
    before = served_sha(box)
    with Load(box, pebble.root) as load:
        time.sleep(2)
        result = ssl_cli(box, inventory, "ssl", "renew", "--force-renewal", "--yes", "--json")
        time.sleep(2)
    assert result.returncode == 0, said(result)
    after = served_sha(box)
    print(f"\nforced renewal under load: {load.total} requests, "
          f"{sum(load.failures.values())} failed ({dict(load.failures)})")
    assert after != before
    assert load.total > 50
    assert not load.failures, dict(load.failures)
    events = [json.loads(line) for line in result.stdout.splitlines() if line.startswith("{")]
    [final] = [e for e in events if e["kind"] == "result"]
    assert final["data"]["hosts"][0]["changed"] is True


# --- failures leave the served certificate alone ------------------------------------------


def test_acme_dns_error_is_one_line_and_keeps_the_certificate(box: OpBox,
                                                             pebble: Pebble) -> None:
    inventory = ensure_issued(box, pebble)
    before = served_sha(box)
    # The site's name now resolves (for pebble) to an address where nothing listens.
    pebble.dns("add-a", {"host": f"{SERVER_NAME}.", "addresses": ["127.0.0.143"]})
    try:
        result = ssl_cli(box, inventory, "ssl", "issue", "--force", "--yes")
    finally:
        pebble.dns("clear-a", {"host": f"{SERVER_NAME}."})
    assert result.returncode == 1, said(result)
    errors = [ln for ln in result.stderr.splitlines() if ln.startswith("error:")]
    assert len(errors) == 1, said(result)
    assert f"ACME connection for {SERVER_NAME}" in errors[0], errors[0]
    assert "127.0.0.143" in errors[0] and "served certificate is unchanged" in errors[0]
    assert served_sha(box) == before


def test_unreachable_acme_server_named(box: OpBox, pebble: Pebble) -> None:
    def change(env: dict[str, Any]) -> None:
        env["nginx"]["tls"] = {"mode": "letsencrypt", "acme_webroot": str(box.sdir / "acme"),
                               "acme_server": f"https://{ACME_ADDRESS}:14999/dir",
                               "acme_ca_file": str(pebble.ca),
                               "certbot_dir": str(box.sdir / "letsencrypt")}

    inventory = box.write_variant("no-acme", change)
    ensure_issued(box, pebble)
    before = served_sha(box)
    result = ssl_cli(box, inventory, "ssl", "issue", "--force", "--yes")
    assert result.returncode == 1, said(result)
    errors = [ln for ln in result.stderr.splitlines() if ln.startswith("error:")]
    assert len(errors) == 1 and "cannot reach the ACME server" in errors[0], said(result)
    assert served_sha(box) == before


def _provided(box: OpBox, name: str) -> Path:
    cert, key = box.sdir / "provided" / "site.pem", box.sdir / "provided" / "site.key"

    def change(env: dict[str, Any]) -> None:
        env["nginx"]["tls"] = {"mode": "provided", "certificate": str(cert),
                               "certificate_key": str(key),
                               "acme_webroot": str(box.sdir / "acme")}
        env["health"]["ca_file"] = str(box.sdir / "tls" / "ca.pem")

    return box.write_variant(name, change)


def test_provided_pair_checked_before_upload(box: OpBox, pebble: Pebble,
                                             tmp_path: Path) -> None:
    ensure_issued(box, pebble)
    inventory = _provided(box, "provided")
    ca, ca_key = box.sdir / "tls" / "ca.pem", box.sdir / "tls" / "ca.key"
    write_signed([SERVER_NAME], tmp_path / "a.pem", tmp_path / "a.key", ca, ca_key)
    write_signed([SERVER_NAME], tmp_path / "b.pem", tmp_path / "b.key", ca, ca_key)
    write_signed(["other.adapto.test"], tmp_path / "o.pem", tmp_path / "o.key", ca, ca_key)
    before = served_sha(box)
    for cert, key, words in (("a.pem", "b.key", "does not match"),
                             ("o.pem", "o.key", f"does not cover {SERVER_NAME}")):
        result = ssl_cli(box, inventory, "ssl", "install", "--cert", str(tmp_path / cert),
                         "--key", str(tmp_path / key), "--yes")
        assert result.returncode == 2, said(result)
        assert result.stderr.count("error:") == 1 and words in result.stderr, said(result)
        assert not (box.sdir / "provided").exists()
        assert served_sha(box) == before
    # A good pair goes in: key 0600, served, the site pointed at it.
    result = ssl_cli(box, inventory, "ssl", "install", "--cert", str(tmp_path / "a.pem"),
                     "--key", str(tmp_path / "a.key"), "--yes")
    assert result.returncode == 0, said(result)
    assert (box.sdir / "provided" / "site.key").stat().st_mode & 0o777 == 0o600
    assert served_sha(box) == _file_sha(tmp_path / "a.pem")
    status = ssl_cli(box, inventory, "ssl", "status")
    assert status.returncode == 0, said(status)
    assert f"ssl_certificate {box.sdir / 'provided' / 'site.pem'};" in box.site_config.read_text()


def test_median_issue_time(box: OpBox, pebble: Pebble) -> None:
    """Three forced issues (each a new order validated through nginx): the median."""
    inventory = letsencrypt(box, pebble)
    times = []
    for _ in range(3):
        started = time.perf_counter()
        result = ssl_cli(box, inventory, "ssl", "issue", "--force", "--yes")
        times.append(time.perf_counter() - started)
        assert result.returncode == 0, said(result)
    print(f"\nACME issue (adapto ssl issue --force, pebble), median of 3: "
          f"{statistics.median(times):.2f} s ({', '.join(f'{t:.2f}' for t in times)})")
    assert "Pebble Intermediate" in issuer(served(box))
