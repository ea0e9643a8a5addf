"""`adapto health` against a real sandbox (sshd, nginx, PM2) with real faults.

One deployed sandbox on this module's own loopback slot; each test injects a
fault for real (a certificate signed by the sandbox CA but expired or for
another name, SIGKILLed processes, a flood from the probes' own address, a
closed SSH port), checks what `health` says about it, and puts things back.
"""

from __future__ import annotations

import collections
import datetime as dt
import json
import os
import re
import signal
import socket
import ssl
import sys
import threading
import time
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import jsonschema
import pytest

from adapto_ops.inventory.secrets import parse_dotenv
from tests.e2e_support import REPO, Cli, adapto, cli_env, run_to_files, said, sandbox_marks
from tests.operate_sandbox import ENV, HOST, SERVER_NAME, OpBox, Slot, deployed_sandbox

pytestmark = [pytest.mark.e2e, *sandbox_marks()]

SLOT = Slot("127.0.0.51", 2351, 8351, 8451, (3351, 3352))
SCHEMA = json.loads((REPO / "tests" / "fixtures" / "health-json.schema.json").read_text())
TOKEN_NAME = "ADAPTO_PROBE_TOKEN"


@pytest.fixture(scope="module")
def box(tmp_path_factory: pytest.TempPathFactory) -> Iterator[OpBox]:
    with deployed_sandbox(tmp_path_factory.mktemp("health"), SLOT) as deployed:
        yield deployed


# --- helpers ---------------------------------------------------------------------------------


def health(box: OpBox, *args: str, inventory: Path | None = None,
           env: dict[str, str] | None = None) -> Cli:
    base = {k: v for k, v in cli_env().items() if not k.startswith("GITHUB_")}
    argv = [sys.executable, "-m", "adapto_ops", "health", "-e", ENV,
            "-i", str(inventory or box.inventory), *args]
    return run_to_files(argv, {**base, **(env or {})}, 120)


def checks(result: Cli) -> dict[str, dict[str, Any]]:
    """`health --json`'s checks of our one host, by key; validated against the schema."""
    document = json.loads(result.stdout)
    jsonschema.validate(document, SCHEMA)
    return {key: entries[0] for key, entries in document["checks"].items()}


def failed(result: Cli) -> dict[str, dict[str, Any]]:
    return {k: c for k, c in checks(result).items() if c["status"] == "fail"}


def assert_healthy(box: OpBox, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while True:
        result = health(box, "--json")
        if result.returncode == 0 or time.monotonic() > deadline:
            break
        time.sleep(1)
    assert result.returncode == 0, said(result)


def served_certificate() -> bytes:
    context = ssl.create_default_context()
    context.check_hostname, context.verify_mode = False, ssl.CERT_NONE
    with socket.create_connection((SLOT.address, SLOT.https_port), 5) as raw, \
            context.wrap_socket(raw, server_hostname=SERVER_NAME) as tls:
        return tls.getpeercert(binary_form=True) or b""


def install_certificate(box: OpBox, names: list[str], valid_from: dt.datetime | None = None,
                        days: int = 30) -> None:
    """A site certificate signed by the sandbox CA, installed, nginx reloaded and serving it."""
    from cryptography import x509
    from cryptography.hazmat.primitives import serialization

    from adapto_ops.tls import write_signed

    tls = box.sdir / "tls"
    write_signed(names, tls / "cert.pem", tls / "key.pem", tls / "ca.pem", tls / "ca.key",
                 days=days, valid_from=valid_from)
    wanted = x509.load_pem_x509_certificate((tls / "cert.pem").read_bytes()) \
        .public_bytes(serialization.Encoding.DER)
    pid = box.nginx_pid()
    assert pid is not None
    os.kill(pid, signal.SIGHUP)
    deadline = time.monotonic() + 10
    while served_certificate() != wanted:
        assert time.monotonic() < deadline, "nginx did not pick up the new certificate"
        time.sleep(0.1)


def restore_certificate(box: OpBox) -> None:
    """`sandbox up` replaces a certificate that is expired or not for the site's names."""
    up = box.cli("sandbox", "up", timeout=120)
    assert up.returncode == 0, said(up)
    assert_healthy(box)


class Flood:
    """Threads hammering /api/health through nginx without the probe token."""

    def __init__(self, threads: int = 2) -> None:
        self.counts: collections.Counter[int | str] = collections.Counter()
        self._stop = threading.Event()
        self._threads = [threading.Thread(target=self._run, daemon=True) for _ in range(threads)]
        self._lock = threading.Lock()

    def _run(self) -> None:
        with httpx.Client(verify=False, trust_env=False, timeout=5) as client:
            while not self._stop.is_set():
                try:
                    code: int | str = client.get(
                        f"https://{SLOT.address}:{SLOT.https_port}/api/health",
                        headers={"Host": SERVER_NAME, "User-Agent": "flood"}).status_code
                except httpx.HTTPError as exc:
                    code = type(exc).__name__
                with self._lock:
                    self.counts[code] += 1

    def __enter__(self) -> Flood:
        for thread in self._threads:
            thread.start()
        deadline = time.monotonic() + 10
        while self.counts[429] < 20:  # nginx is limiting before anything is measured
            assert time.monotonic() < deadline, dict(self.counts)
            time.sleep(0.05)
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(10)


def access_addresses(box: OpBox, user_agent: str, since: int) -> set[str]:
    """$remote_addr of the access log lines after byte ``since`` sent with ``user_agent``."""
    log = box.sdir / "nginx" / "logs" / "access.log"
    with log.open("rb") as handle:
        handle.seek(since)
        text = handle.read().decode(errors="replace")
    return {line.split(" ", 1)[0] for line in text.splitlines()
            if f'"{user_agent}" rt=' in line}


def deploy(inventory: Path) -> Cli:
    return adapto("deploy", "all", "--yes", "--skip-build", "--force", "-e", ENV,
                  "-i", str(inventory))


def without_token(env: dict[str, Any]) -> None:
    env["health"].pop("probe_token", None)


# --- a healthy site ---------------------------------------------------------------------------


def test_healthy_sandbox_passes_every_check_and_the_schema(box: OpBox) -> None:
    result = health(box, "--json")
    assert result.returncode == 0, said(result)
    found = checks(result)
    expected = {"certificate:daysLeft", "http:redirect", "page:responseTime", "hsts:present",
                "api:responseTime", "websocket:roundTrip", "ssh:connect", "pm2:status",
                "nginx:running", "nginx:config", "disk:free", "database:backendView",
                "database:connect", *(f"instance-{p}:responseTime" for p in SLOT.ports)}
    assert set(found) == expected
    assert {c["status"] for c in found.values()} == {"pass"}, found
    assert found["certificate:daysLeft"]["observedValue"] > 14
    assert found["http:redirect"]["observedValue"] == 301
    assert found["pm2:status"]["observedValue"] == "2/2 online"
    assert all(c["componentId"] == HOST for c in found.values())
    # The table is for people: one row per check, nothing else on stdout.
    table = health(box)
    assert table.returncode == 0 and "websocket" in table.stdout, said(table)


def test_junit_strict_and_github_actions(box: OpBox, tmp_path: Path) -> None:
    # A budget nothing meets: API and instances warn (slow), nothing fails.
    slow = box.write_variant("slow", lambda env: env["health"].update(api_budget_ms=1))
    junit, summary = tmp_path / "health.xml", tmp_path / "summary.md"
    github = {"GITHUB_ACTIONS": "true", "GITHUB_STEP_SUMMARY": str(summary)}
    lenient = health(box, "--junit", str(junit), inventory=slow, env=github)
    assert lenient.returncode == 0, said(lenient)
    root = ET.parse(junit).getroot()
    cases = list(root.iter("testcase"))
    ids = [(c.get("classname"), c.get("name")) for c in cases]
    assert len(ids) == len(set(ids)) == 15, ids
    assert {c for c, _ in ids} == {f"adapto.health.{ENV}.{HOST}"}
    assert root.get("failures") == "0"
    warned = {c.get("name"): c for c in cases if c.find("system-out") is not None}
    assert "api:responseTime" in warned
    assert "> budget 1 ms" in (warned["api:responseTime"].findtext("system-out") or "")
    assert re.search(r"^::warning title=adapto health%3A sandbox1 api \(slow\)::\d+ ms > budget",
                     lenient.stdout, re.M), said(lenient)
    assert "| sandbox1 | api | ⚠️ warn |" in summary.read_text()

    strict = health(box, "--junit", str(junit), "--strict", "--json", inventory=slow,
                    env=github)
    assert strict.returncode == 1, said(strict)
    assert json.loads(strict.stdout)["status"] == "warn"  # stdout stays pure JSON
    assert "::error title=adapto health%3A sandbox1 api (slow)::" in strict.stderr
    failures = [c for c in ET.parse(junit).getroot().iter("testcase")
                if c.find("failure") is not None]
    assert "api:responseTime" in {c.get("name") for c in failures}
    failure = next(c for c in failures if c.get("name") == "api:responseTime").find("failure")
    assert failure is not None and failure.get("type") == "slow"
    assert f"next: adapto logs backend -e {ENV}" in (failure.text or "")


# --- certificates -----------------------------------------------------------------------------


def test_an_expired_certificate_is_caught(box: OpBox) -> None:
    long_ago = dt.datetime.now(dt.UTC) - dt.timedelta(days=40)
    install_certificate(box, [SERVER_NAME], valid_from=long_ago, days=30)
    try:
        result = health(box, "--json")
        assert result.returncode == 1, said(result)
        bad = failed(result)
        cert = bad["certificate:daysLeft"]
        assert cert["kind"] == "tls" and cert["output"].startswith("expired 10 day(s) ago")
        assert cert["observedValue"] < -9
        assert cert["next"] == f"adapto recover nginx -e {ENV}"
        for key in ("page:responseTime", "api:responseTime", "websocket:roundTrip"):
            assert bad[key]["kind"] == "tls", bad[key]
            assert "expired" in bad[key]["output"]
        assert "instance-3351:responseTime" not in bad  # the host itself is fine
    finally:
        restore_certificate(box)


def test_a_certificate_for_another_name_is_caught(box: OpBox) -> None:
    install_certificate(box, ["other.adapto.test"])
    try:
        result = health(box, "--json")
        assert result.returncode == 1, said(result)
        cert = failed(result)["certificate:daysLeft"]
        assert cert["kind"] == "tls"
        assert cert["output"].startswith(
            f"certificate is for other.adapto.test, not {SERVER_NAME}"), cert
        assert cert["observedValue"] > 29  # valid dates: the name is what is wrong
    finally:
        restore_certificate(box)


# --- processes and hosts ------------------------------------------------------------------------


@pytest.mark.timeout(180)
def test_killed_processes_are_a_process_failure_with_recover_backend(box: OpBox) -> None:
    pids = [app["pid"] for app in box.pm2_apps().values()]
    daemon = box.pm2_daemon_pid()
    assert daemon and len(pids) == len(SLOT.ports) and all(pids), (daemon, pids)
    os.kill(daemon, signal.SIGKILL)  # first, so nothing restarts the instances
    for pid in pids:
        os.kill(pid, signal.SIGKILL)
    try:
        result = health(box, "--json")
        assert result.returncode == 1, said(result)
        bad = failed(result)
        recover = f"adapto recover backend -e {ENV}"
        for port in SLOT.ports:
            instance = bad[f"instance-{port}:responseTime"]
            assert instance["kind"] == "process" and instance["next"] == recover
        assert bad["pm2:status"]["output"] == "the PM2 daemon is not running"
        api = bad["api:responseTime"]
        assert (api["kind"], api["output"], api["next"]) == \
            ("500", "HTTP 502 Bad Gateway", recover)
        assert "<" not in json.dumps(bad)  # status lines, never nginx's HTML page
        table = health(box)
        assert recover in table.stdout and "FAIL" in table.stdout
    finally:
        up = box.cli("sandbox", "up", timeout=120)  # the PM2 daemon back
        assert up.returncode == 0, said(up)
        box.pm2("resurrect")
        assert_healthy(box, timeout=60)


def test_an_unreachable_host_is_one_failed_ssh_check(box: OpBox) -> None:
    closed = box.write_variant("closed-ssh", lambda env: env["hosts"][0].update(port=2359))
    result = health(box, "--json", inventory=closed)
    assert result.returncode == 1, said(result)
    ssh = failed(result)["ssh:connect"]
    assert ssh["kind"] == "network" and ssh["next"] == f"adapto sandbox up -e {ENV}"
    assert "\n" not in ssh["output"] and "2359" in ssh["output"], ssh
    assert "Traceback" not in result.stderr
    assert checks(result)["api:responseTime"]["status"] == "pass"  # the site still answers


# --- the probe token against a flood (last: it leaves strict limits behind) -----------


def strict_limits(env: dict[str, Any]) -> None:
    """One /api/ request a minute per key: once the flood used it, nothing else gets through
    without the token (with the default 20r/s a lucky retry would, now and then)."""
    env["nginx"]["rate_limits"] = {"api": {"rate": "1r/m", "burst": 1}}


@pytest.mark.slow  # two deploys under a flood: about a minute
@pytest.mark.timeout(300)
def test_a_flood_from_the_probes_address_cannot_fail_the_deploy(box: OpBox) -> None:
    strict = box.write_variant("strict", strict_limits)
    strict_no_token = box.write_variant("strict-no-token",
                                        lambda env: (strict_limits(env), without_token(env)))
    log = box.sdir / "nginx" / "logs" / "access.log"
    since = log.stat().st_size
    with Flood() as flood:
        deployed = deploy(strict)
        # The same flood, now against the strict limits the deploy installed.
        limited = health(box, "--json", inventory=strict_no_token)
        exempt = health(box, "--json", inventory=strict)
    assert deployed.returncode == 0, said(deployed)
    assert "rolled back" not in deployed.stdout
    assert flood.counts[429] > 100, dict(flood.counts)
    token = parse_dotenv((box.base / ".adapto" / "secrets.env").read_text())[TOKEN_NAME]
    installed = box.site_config.read_text()
    # Same client address for the flood and the deploy's own probes through nginx.
    flood_from = access_addresses(box, "flood", since)
    probes_from = access_addresses(box, "adapto-probe", since)
    assert probes_from and flood_from == probes_from, (flood_from, probes_from)

    assert limited.returncode == 1, said(limited)
    api = failed(limited)["api:responseTime"]
    assert api["kind"] == "rate-limited", api
    assert api["output"] == "HTTP 429 Too Many Requests"
    assert api["next"] == f"adapto logs nginx-access -e {ENV}"
    assert exempt.returncode == 0, said(exempt)

    # Without the token the very same deploy is rate-limited into a rollback.
    with Flood():
        refused = deploy(strict_no_token)
    assert refused.returncode == 1, said(refused)
    assert "HTTP 429 Too Many Requests" in refused.stdout + refused.stderr, said(refused)
    assert "<html" not in refused.stdout + refused.stderr  # a status line, not the page
    # The token is a secret: in nginx's config on the host, in no output.
    assert len(token) >= 16 and f'"{token}" "";' in installed
    for result in (deployed, limited, exempt, refused):
        assert token not in result.stdout + result.stderr
    shown = adapto("render", "nginx", "-e", ENV, "-i", str(box.inventory))
    assert shown.returncode == 0 and token not in shown.stdout, said(shown)
    assert f'"****({len(token)} chars)" "";' in shown.stdout
    # This test runs last: nginx keeps the strict limits until the module's sandbox goes.
