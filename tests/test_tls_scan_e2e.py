"""TLS as served: testssl.sh scans the sandbox's HTTPS endpoint (issue 9, item 5).

A real sandbox (sshd, nginx, PM2, PostgreSQL on 127.0.0.161) is deployed from
the repository's templates; testssl.sh (Debian's ``testssl``) connects to it
with the site's real name as SNI (``--ip`` pins the loopback address) and
reports the protocols (-p), every cipher each protocol accepts (-E) and the
HTTP headers (-h). The served TLS must be TLS 1.2/1.3 only, every cipher in
Mozilla's "intermediate" list, HSTS sent, and plain HTTP must redirect to HTTPS.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests.e2e_support import tools_missing
from tests.operate_sandbox import SERVER_NAME, OpBox, Slot, deployed_sandbox

# 127.0.0.161 is this branch's slot; the audit e2e uses other ports on it.
SLOT = Slot("127.0.0.161", 2461, 8461, 8561, (3461, 3462))

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.slow,
    pytest.mark.skipif(bool(tools_missing(("sshd",))) or not shutil.which("testssl"),
                       reason="needs nginx, pm2, node, sshd and testssl"),
]

# Mozilla's server-side TLS guidelines, "intermediate" configuration (v5.7), in
# OpenSSL names (testssl reports those). TLS 1.3 suites are all three of TLS 1.3's.
MOZILLA_INTERMEDIATE = {
    "TLSv1.2": {
        "ECDHE-ECDSA-AES128-GCM-SHA256", "ECDHE-RSA-AES128-GCM-SHA256",
        "ECDHE-ECDSA-AES256-GCM-SHA384", "ECDHE-RSA-AES256-GCM-SHA384",
        "ECDHE-ECDSA-CHACHA20-POLY1305", "ECDHE-RSA-CHACHA20-POLY1305",
        "DHE-RSA-AES128-GCM-SHA256", "DHE-RSA-AES256-GCM-SHA384",
        "DHE-RSA-CHACHA20-POLY1305",
    },
    "TLSv1.3": {"TLS_AES_128_GCM_SHA256", "TLS_AES_256_GCM_SHA384",
                "TLS_CHACHA20_POLY1305_SHA256"},
}
SCAN_TIMEOUT_S = 240


@pytest.fixture(scope="module")
def box(tmp_path_factory: pytest.TempPathFactory) -> Iterator[OpBox]:
    with deployed_sandbox(tmp_path_factory.mktemp("tlsscan"), SLOT) as sandbox:
        yield sandbox


@pytest.fixture(scope="module")
def scan(box: OpBox, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    out = tmp_path_factory.mktemp("testssl") / "scan.json"
    argv = ["testssl", "--quiet", "--warnings", "off", "--color", "0", "--jsonfile", str(out),
            "--ip", SLOT.address, "-p", "-E", "-h",
            f"https://{SERVER_NAME}:{SLOT.https_port}"]
    started = time.perf_counter()
    result = subprocess.run(argv, capture_output=True, text=True, timeout=SCAN_TIMEOUT_S,
                            check=False)
    elapsed = time.perf_counter() - started
    print(f"testssl -p -E -h on {SLOT.address}:{SLOT.https_port}: {elapsed:.1f} s")
    assert out.exists(), result.stdout[-2000:] + result.stderr[-2000:]
    findings = json.loads(out.read_text())
    assert isinstance(findings, list) and findings, out.read_text()[:2000]
    return {"findings": findings, "seconds": elapsed}


def by_id(scan: dict[str, Any]) -> dict[str, str]:
    return {f["id"]: str(f.get("finding", "")) for f in scan["findings"]}


def offered_ciphers(scan: dict[str, Any]) -> dict[str, set[str]]:
    """protocol -> the OpenSSL names of the ciphers testssl saw accepted (-E)."""
    found: dict[str, set[str]] = {}
    for f in scan["findings"]:
        match = re.match(r"cipher-(tls1_\d|ssl\d)_x[0-9a-f]+$", str(f["id"]))
        if not match:
            continue
        protocol = {"tls1_2": "TLSv1.2", "tls1_3": "TLSv1.3"}.get(match[1], match[1])
        # id cipher-tls1_2_xc02f: "TLS 1.2   xc02f   ECDHE-RSA-AES128-GCM-SHA256   ECDH 253 ..."
        parts = str(f["finding"]).split()
        code = next(i for i, part in enumerate(parts) if re.fullmatch(r"x[0-9a-f]+", part))
        found.setdefault(protocol, set()).add(parts[code + 1])
    return found


def test_only_tls_1_2_and_1_3_are_offered(scan: dict[str, Any]) -> None:
    ids = by_id(scan)
    for old in ("SSLv2", "SSLv3", "TLS1", "TLS1_1"):
        assert ids.get(old, "").startswith("not offered"), (old, ids.get(old))
    for current in ("TLS1_2", "TLS1_3"):
        assert ids.get(current, "").startswith("offered"), (current, ids.get(current))


def test_every_cipher_is_mozilla_intermediate(scan: dict[str, Any]) -> None:
    offered = offered_ciphers(scan)
    assert set(offered) == {"TLSv1.2", "TLSv1.3"}, offered
    for protocol, names in offered.items():
        outside = names - MOZILLA_INTERMEDIATE[protocol]
        assert not outside, f"{protocol} offers ciphers outside Mozilla intermediate: {outside}"
        assert names, protocol


def test_hsts_is_sent(scan: dict[str, Any]) -> None:
    # testssl: HSTS_time "730 days (=63072000 seconds) > 15552000 seconds"
    hsts = by_id(scan).get("HSTS_time", "")
    match = re.search(r"=(\d+) seconds", hsts)
    assert match, f"no HSTS header seen: {hsts!r}"
    assert int(match[1]) >= 15552000, hsts  # 180 days at least, Mozilla's minimum


def test_plain_http_redirects_to_https(box: OpBox) -> None:
    response = httpx.get(f"http://{SLOT.address}:{SLOT.http_port}/dialogs?x=1",
                         headers={"Host": SERVER_NAME}, timeout=10, trust_env=False,
                         follow_redirects=False)
    assert response.status_code == 301, response.status_code
    location = response.headers["location"]
    assert location.startswith(f"https://{SERVER_NAME}"), location
    assert location.endswith("/dialogs?x=1"), location
    api = httpx.get(f"http://{SLOT.address}:{SLOT.http_port}/api/health",
                    headers={"Host": SERVER_NAME}, timeout=10, trust_env=False)
    assert api.status_code == 301 and api.headers["location"].startswith("https://")


def test_scan_time_is_bounded(scan: dict[str, Any]) -> None:
    assert scan["seconds"] < SCAN_TIMEOUT_S
