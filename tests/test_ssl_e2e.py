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
import re
import socket
import ssl
import statistics
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from adapto_ops.tls import write_signed
from tests.e2e_support import Cli, cli_env, run_to_files, said, sandbox_marks
from tests.operate_sandbox import ENV, SERVER_NAME, OpBox, deployed_sandbox
from tests.pebble_support import (
    ACME_ADDRESS,
    ACME_DIR,
    SLOT,
    Load,
    Pebble,
    letsencrypt,
)

pytestmark = [pytest.mark.e2e, pytest.mark.slow,
              *sandbox_marks(("certbot", "pebble", "pebble-challtestsrv", "openssl"))]


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


def test_forced_renewal_under_load_fails_no_request(box: OpBox, pebble: Pebble) -> None:
    inventory = ensure_issued(box, pebble)
    before = served_sha(box)
    with Load(box, pebble.root) as load:
        time.sleep(2)
        result = ssl_cli(box, inventory, "ssl", "renew", "--force-renewal", "--yes", "--json")
        time.sleep(2)
    assert result.returncode == 0, said(result)
    after = served_sha(box)
    print(f"\nforced renewal under load: {load.total} requests, "
          f"{sum(load.failures.values())} failed ({dict(load.failures)}), "
          f"{load.resent_on_closed_keepalive} resent on a new connection after the reload "
          "closed their idle keep-alive connection")
    assert after != before
    assert load.total > 50
    assert not load.failures, load.failure_details
    events = [json.loads(line) for line in result.stdout.splitlines() if line.startswith("{")]
    [final] = [e for e in events if e["kind"] == "result"]
    assert final["data"]["hosts"][0]["changed"] is True


# --- failures leave the served certificate alone ------------------------------------------


# Seen once in four clean CI runs: pebble validated through the sandbox although
# pebble-challtestsrv had just been told to answer with an address where nothing listens
# (the mock record seemingly not yet in effect). Until the cause is found it may not fail CI;
# it still runs, and reports XPASS when it holds.
@pytest.mark.xfail(strict=False, reason="pebble-challtestsrv's mock A record is not always "
                   "in effect for the next validation (seen once in CI)")
def test_acme_dns_error_is_one_line_and_keeps_the_certificate(box: OpBox,
                                                             pebble: Pebble) -> None:
    inventory = ensure_issued(box, pebble)
    before = served_sha(box)
    # The site's name now resolves (for pebble) to an address of this test's slot where
    # nothing listens on the HTTP port (pebble's own address).
    pebble.dns("add-a", {"host": f"{SERVER_NAME}.", "addresses": [ACME_ADDRESS]})
    try:
        result = ssl_cli(box, inventory, "ssl", "issue", "--force", "--yes")
    finally:
        pebble.dns("clear-a", {"host": f"{SERVER_NAME}."})
    assert result.returncode == 1, said(result) + pebble.log_tail()
    errors = [ln for ln in result.stderr.splitlines() if ln.startswith("error:")]
    assert len(errors) == 1, said(result)
    assert f"ACME connection for {SERVER_NAME}" in errors[0], errors[0]
    assert f"{ACME_ADDRESS}:{SLOT.http_port}" in errors[0]
    assert "served certificate is unchanged" in errors[0]
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


def test_self_signed_in_the_sandbox(box: OpBox, pebble: Pebble) -> None:
    """The sandbox's own mode: a new pair signed by its CA, served, and health trusts it."""
    letsencrypt_inventory = letsencrypt(box, pebble)
    refused = ssl_cli(box, letsencrypt_inventory, "ssl", "self-signed", "--yes")
    assert refused.returncode == 2 and "certbot's" in refused.stderr, said(refused)
    before = served_sha(box)
    # 10 days: under health.certificate_warn_days (14), so status warns (exit 0).
    result = ssl_cli(box, box.inventory, "ssl", "self-signed", "--days", "10", "--yes")
    assert result.returncode == 0, said(result)
    der = served(box)
    assert hashlib.sha256(der).hexdigest() != before
    assert "adapto sandbox CA" in issuer(der)
    assert (box.sdir / "tls" / "key.pem").stat().st_mode & 0o777 == 0o600
    status = ssl_cli(box, box.inventory, "ssl", "status", "--json")
    assert status.returncode == 0, said(status)
    [row] = json.loads(status.stdout)["domains"]
    assert 9.5 < row["live_days"] < 10.1 and 9.5 < row["file_days"] < 10.1
    assert row["status"] == "warn" and json.loads(status.stdout)["status"] == "warn"


def test_fresh_host_gets_a_stand_in_then_its_first_certificate(box: OpBox,
                                                               pebble: Pebble) -> None:
    """No site config and no lineage yet (a new server): nginx first serves the ACME location
    with a stand-in pair, then certbot's certificate. Last: it moves the site to a new
    lineage."""
    fresh = box.sdir / "le-fresh"

    def change(env: dict[str, Any]) -> None:
        env["nginx"]["tls"] = {"mode": "letsencrypt", "acme_webroot": str(box.sdir / "acme"),
                               "acme_server": ACME_DIR, "acme_ca_file": str(pebble.ca),
                               "certbot_dir": str(fresh)}
        env["health"]["ca_file"] = str(pebble.root)

    inventory = box.write_variant("fresh", change)
    enabled = box.site_config.parent.parent / "sites-enabled" / box.site_config.name
    box.site_config.unlink()
    enabled.unlink()
    nginx = ["nginx", "-p", str(box.sdir / "nginx"), "-c",
             str(box.sdir / "nginx" / "conf" / "nginx.conf")]
    subprocess.run([*nginx, "-s", "reload"], check=True, timeout=30, capture_output=True)
    result = ssl_cli(box, inventory, "ssl", "issue", "--yes")
    assert result.returncode == 0, said(result)
    assert "stand-in certificate" in result.stdout
    assert (fresh / "adapto-bootstrap" / SERVER_NAME / "key.pem").stat().st_mode & 0o777 == 0o600
    assert f"ssl_certificate {fresh}/live/{SERVER_NAME}/fullchain.pem;" in \
        box.site_config.read_text()
    assert hashlib.sha256(served(box)).hexdigest() == _file_sha(
        fresh / "live" / SERVER_NAME / "fullchain.pem")
    health = ssl_cli(box, inventory, "health", "--json", timeout=120)
    [cert] = json.loads(health.stdout)["checks"]["certificate:daysLeft"]
    assert cert["status"] == "pass", said(health)
