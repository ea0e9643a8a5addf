"""The health check's pure pieces: classification, reporters, on-host results, the probe token.

No server here: results are built from values, certificates made in a
temporary folder. tests/test_health_e2e.py runs the real thing on a sandbox.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import shutil
import xml.etree.ElementTree as ET
from pathlib import Path

import jsonschema
import pytest
import yaml

from adapto_ops.errors import AdaptoError, InventoryError
from adapto_ops.facts import Disk, HostFacts, Pm2Process
from adapto_ops.health import report
from adapto_ops.health.classify import (
    NextCommands,
    body_reason,
    error_kind,
    http_kind,
    http_output,
    probe_reason,
)
from adapto_ops.health.local import describe_certificate
from adapto_ops.health.model import CheckResult, exit_code, overall
from adapto_ops.health.onhost import HostChecks
from adapto_ops.inventory import load_inventory
from adapto_ops.inventory.loader import parse_inventory
from adapto_ops.inventory.secrets import SecretValues
from adapto_ops.render.checks import check_nginx
from adapto_ops.render.configs import Target, probe_token_value, render_nginx, render_target
from adapto_ops.tls import issued_by, write_ca, write_signed

REPO = Path(__file__).resolve().parent.parent
SCHEMA = json.loads((REPO / "tests" / "fixtures" / "health-json.schema.json").read_text())
LOADED = load_inventory(REPO / "inventory.yaml")
NGINX_502 = ("<html>\r\n<head><title>502 Bad Gateway</title></head>\r\n<body>\r\n<center>"
             "<h1>502 Bad Gateway</h1></center>\r\n<hr><center>nginx</center>\r\n</body>\r\n"
             "</html>\r\n" + "<!-- a padding comment -->\r\n" * 6)
TOKEN = "probe-token-0123456789abcdef"


# --- classification --------------------------------------------------------------------------


def test_an_html_error_page_becomes_its_status_line() -> None:
    assert body_reason(NGINX_502) == "502 Bad Gateway"
    assert http_output(502, NGINX_502) == "HTTP 502 Bad Gateway"
    assert http_kind(502, NGINX_502) == "500"


def test_a_json_error_field_is_the_reason_trimmed() -> None:
    body = json.dumps({"error": "database connection failed: " + "x" * 400})
    out = http_output(503, body)
    assert out.startswith("HTTP 503 Service Unavailable: database connection failed")
    assert len(out) < 160 and out.endswith("…")
    assert http_kind(503, body) == "database"


@pytest.mark.parametrize(("code", "body", "kind"), [
    (404, '{"error": "not found"}', "404"),
    (429, "<html><title>429 Too Many Requests</title></html>", "rate-limited"),
    (401, "", "authentication"),
    (403, "", "authentication"),
    (500, '{"error": "Invalid API key"}', "authentication"),
    (500, "Internal Server Error", "500"),
    (504, NGINX_502.replace("502", "504"), "500"),
    (301, "", "config"),
])
def test_http_answers_are_classified(code: int, body: str, kind: str) -> None:
    assert http_kind(code, body) == kind


def test_an_on_host_probe_failure_is_one_short_line() -> None:
    page = NGINX_502.replace("502 Bad Gateway", "429 Too Many Requests")
    assert probe_reason(429, f"HTTP 429 {page[:200]}") == "HTTP 429 Too Many Requests"
    assert probe_reason(None, "ECONNREFUSED") == "ECONNREFUSED"
    assert probe_reason(None, None) == "no answer"


def test_errors_without_an_answer_are_tls_or_network() -> None:
    assert error_kind("certificate not trusted: certificate has expired") == "tls"
    assert error_kind("TLS: WRONG_VERSION_NUMBER") == "tls"
    assert error_kind("connection refused") == "network"
    assert error_kind("timed out") == "network"


def test_next_commands_name_the_runbook_procedure() -> None:
    one = NextCommands("production", "prod1")
    assert one.for_kind("500", "api") == "adapto recover backend -e production"
    assert one.for_kind("process", "instance-3001") == "adapto recover backend -e production"
    assert one.for_kind("network", "instance-3001") == "adapto recover backend -e production"
    assert one.for_kind("process", "nginx") == "adapto recover nginx -e production"
    assert one.for_kind("config", "nginx") == "adapto recover nginx -e production"
    assert one.for_kind("rate-limited", "api") == "adapto logs nginx-access -e production"
    assert one.for_kind("websocket", "websocket") == "adapto logs nginx-error -e production"
    assert one.for_kind("database", "api") == "adapto recover database -e production"
    assert one.for_kind("network", "ssh") == "adapto status -e production"
    many = NextCommands("production", "web2", many_hosts=True)
    assert many.for_kind("500", "api") == "adapto recover backend -e production --host web2"
    sandbox = NextCommands("sandbox", "sandbox1", sandbox=True)
    assert sandbox.for_kind("network", "ssh") == "adapto sandbox up -e sandbox"


# --- certificates ------------------------------------------------------------------------------


def _der(path: Path) -> bytes:
    from cryptography import x509
    from cryptography.hazmat.primitives import serialization

    return x509.load_pem_x509_certificate(path.read_bytes()).public_bytes(
        serialization.Encoding.DER)


def test_a_certificate_says_why_it_fails(tmp_path: Path) -> None:
    ca, ca_key = tmp_path / "ca.pem", tmp_path / "ca.key"
    write_ca("test CA", ca, ca_key)
    assert oct(ca_key.stat().st_mode & 0o777) == "0o600"
    expired, key = tmp_path / "expired.pem", tmp_path / "k.pem"
    long_ago = dt.datetime.now(dt.UTC) - dt.timedelta(days=40)
    write_signed(["op.adapto.test"], expired, key, ca, ca_key, days=30, valid_from=long_ago)
    assert issued_by(expired, ca)
    assert describe_certificate(_der(expired), "op.adapto.test").startswith(
        "expired 10 day(s) ago")
    other = tmp_path / "other.pem"
    write_signed(["other.adapto.test"], other, key, ca, ca_key)
    assert describe_certificate(_der(other), "op.adapto.test") == \
        "certificate is for other.adapto.test, not op.adapto.test"
    good = tmp_path / "good.pem"
    write_signed(["op.adapto.test"], good, key, ca, ca_key)
    assert describe_certificate(_der(good), "op.adapto.test").startswith("unknown issuer CN=")
    write_ca("another CA", tmp_path / "ca2.pem", tmp_path / "ca2.key")
    assert not issued_by(good, tmp_path / "ca2.pem")


# --- reporters ----------------------------------------------------------------------------------


def _results() -> list[CheckResult]:
    nxt = NextCommands("op", "sandbox1")
    return [
        CheckResult("sandbox1", "api", "responseTime", "api", "pass", 12.5, "ms", "HTTP 200",
                    duration_ms=12.5, endpoint="https://op.adapto.test/api/health"),
        CheckResult("sandbox1", "page", "responseTime", "page", "warn", 2500.0, "ms",
                    "2500 ms > budget 2000 ms", "slow", nxt.for_kind("slow"), 2500.0,
                    endpoint="https://op.adapto.test/"),
        CheckResult("sandbox1", "instance-3001", "responseTime", "instance :3001", "fail",
                    None, "ms", "HTTP 502 Bad Gateway", "500", nxt.for_kind("500"), 40.0),
        CheckResult("sandbox2", "api", "responseTime", "api", "pass", 10.0, "ms", "HTTP 200",
                    duration_ms=10.0),
        CheckResult("sandbox2", "ssh", "connect", "ssh", "fail", None, "ms",
                    "ssh: connection refused, 100%, a:b", "network",
                    "adapto sandbox up -e op", 3.0),
    ]


def test_overall_status_and_exit_codes() -> None:
    results = _results()
    assert overall(results) == "fail" and exit_code(results, strict=False) == 1
    warn_only = [r for r in results if r.status != "fail"]
    assert overall(warn_only) == "warn"
    assert exit_code(warn_only, strict=False) == 0 and exit_code(warn_only, strict=True) == 1


def test_health_json_matches_the_schema() -> None:
    document = report.health_json(_results(), "op")
    jsonschema.validate(document, SCHEMA)
    assert document["status"] == "fail"
    assert [e["componentId"] for e in document["checks"]["api:responseTime"]] == \
        ["sandbox1", "sandbox2"]
    failed = document["checks"]["instance-3001:responseTime"][0]
    assert failed["kind"] == "500" and failed["next"] == "adapto recover backend -e op"


def test_the_schema_rejects_an_html_page_and_a_failure_without_next() -> None:
    document = report.health_json(_results(), "op")
    broken = json.loads(json.dumps(document))
    broken["checks"]["api:responseTime"][0]["output"] = "<html><body>oops</body></html>"
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(broken, SCHEMA)
    broken = json.loads(json.dumps(document))
    del broken["checks"]["ssh:connect"][0]["next"]
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(broken, SCHEMA)


def _cases(xml_text: str) -> list[ET.Element]:
    return list(ET.fromstring(xml_text).iter("testcase"))


def test_junit_has_unique_cases_and_details_in_the_text() -> None:
    results = _results()
    cases = _cases(report.junit_xml(results, "op", strict=False))
    ids = [(c.get("classname"), c.get("name")) for c in cases]
    assert len(ids) == len(set(ids)) == len(results)
    root = ET.fromstring(report.junit_xml(results, "op", strict=False))
    assert [s.get("name") for s in root.iter("testsuite")] == ["op/sandbox1", "op/sandbox2"]
    assert root.get("failures") == "2"
    by_name = {(c.get("classname"), c.get("name")): c for c in cases}
    failed = by_name[("adapto.health.op.sandbox1", "instance-3001:responseTime")]
    failure = failed.find("failure")
    assert failure is not None and failure.get("type") == "500"
    assert "next: adapto recover backend -e op" in (failure.text or "")
    warned = by_name[("adapto.health.op.sandbox1", "page:responseTime")]
    assert warned.find("failure") is None
    assert "2500 ms > budget" in (warned.findtext("system-out") or "")
    strict = {(c.get("classname"), c.get("name")): c
              for c in _cases(report.junit_xml(results, "op", strict=True))}
    assert strict[("adapto.health.op.sandbox1", "page:responseTime")].find("failure") is not None


def test_github_annotations_are_escaped_and_the_summary_is_a_table() -> None:
    lines = report.github_annotations(_results(), strict=False)
    assert lines[0].startswith("::warning title=adapto health%3A sandbox1 page (slow)::")
    assert lines[1].startswith("::error title=")
    ssh = lines[2]
    assert "%2C" not in ssh.split("::", 2)[2] and "100%25" in ssh  # data escapes % only
    assert report.github_annotations(_results(), strict=True)[0].startswith("::error")
    summary = report.step_summary(_results(), "op").splitlines()
    assert summary[0].startswith("### adapto health of op")
    assert len([row for row in summary if row.startswith("| sandbox")]) == 5


# --- on-host results --------------------------------------------------------------------------


def _target(env_name: str = "sandbox") -> Target:
    env = LOADED.environment(env_name)
    return Target.of(LOADED.inventory.project, env_name, env, env.hosts[0])


def _facts(**changes: object) -> HostFacts:
    target = _target()
    ports = target.env.backend.ports
    name = target.env.backend.name
    pm2 = [Pm2Process(f"{name}-{p}", "online", 100 + p, name, uptime_s=600.0) for p in ports]
    body = json.dumps({"database": {"status": "ok", "latency_ms": 1.5},
                       "migrations": {"pending": 0}})
    probe = json.dumps([{"url": f"http://127.0.0.2:{p}/api/health", "status": 200, "ms": 3.0,
                         "body": body} for p in ports])
    database = json.dumps({"mode": "check", "configured": True, "latency_ms": 4.0,
                           "target": {"host": "127.0.0.1", "port": 5432, "user": "app",
                                      "dbname": "db"},
                           "steps": [{"name": "tcp", "ok": True, "detail": "accepts"}]})
    base = HostFacts("sandbox1", pm2_daemon=True, pm2=pm2, nginx_pid=42, nginx_config_ok=True,
                     disk=Disk(100 * 10**9, 50 * 10**9, "/"), probe_output=probe,
                     database_output=database)
    return dataclasses.replace(base, **changes)  # type: ignore[arg-type]


def _by_key(facts: HostFacts) -> dict[str, CheckResult]:
    checks = HostChecks(_target(), facts, NextCommands("sandbox", "sandbox1"), 10.0).all()
    return {c.key: c for c in checks}


def test_a_healthy_host_passes_every_on_host_check() -> None:
    results = _by_key(_facts())
    assert {r.status for r in results.values()} == {"pass"}
    assert results["pm2:status"].observed_value == "2/2 online"


def test_pm2_crash_loop_missing_instance_and_daemon_down() -> None:
    target = _target()
    name, ports = target.env.backend.name, target.env.backend.ports
    looping = Pm2Process(f"{name}-{ports[0]}", "waiting restart", None, name, restarts=7)
    pm2 = _by_key(_facts(pm2=[looping]))["pm2:status"]
    assert pm2.status == "fail" and pm2.kind == "process"
    assert f"{name}-{ports[0]} crash loop (waiting restart, 7 restarts)" in pm2.output
    assert f"{name}-{ports[1]} missing" in pm2.output
    assert pm2.next_command == "adapto recover backend -e sandbox"
    down = _by_key(_facts(pm2_daemon=False, pm2=None))["pm2:status"]
    assert down.output == "the PM2 daemon is not running"


def test_a_refused_or_failing_instance_is_named() -> None:
    ports = _target().env.backend.ports
    probe = json.dumps([
        {"url": f"http://127.0.0.2:{ports[0]}/api/health", "error": "ECONNREFUSED"},
        {"url": f"http://127.0.0.2:{ports[1]}/api/health", "status": 503,
         "error": 'HTTP 503 {"status":"failing","release":"r1"}'},
    ])
    results = _by_key(_facts(probe_output=probe))
    refused = results[f"instance-{ports[0]}:responseTime"]
    assert (refused.status, refused.kind) == ("fail", "process")
    assert refused.next_command == "adapto recover backend -e sandbox"
    failing = results[f"instance-{ports[1]}:responseTime"]
    assert failing.output == "HTTP 503 Service Unavailable: failing" and failing.kind == "500"


def test_nginx_config_and_disk_thresholds() -> None:
    error = ("nginx: [emerg] unknown directive \"proxy_passs\" in /x/site.conf:12 "
             "nginx: configuration file /x/nginx.conf test failed")
    results = _by_key(_facts(nginx_config_ok=False, nginx_config_error=error, nginx_pid=None,
                             disk=Disk(100 * 10**9, 10 * 10**9, "/")))
    config = results["nginx:config"]
    assert config.status == "fail" and config.output.startswith("[emerg] unknown directive")
    assert config.next_command == "adapto recover nginx -e sandbox"
    assert results["nginx:running"].status == "fail"
    assert results["disk:free"].status == "warn" and results["disk:free"].kind == "disk"
    full = _by_key(_facts(disk=Disk(100 * 10**9, 2 * 10**9, "/")))["disk:free"]
    assert full.status == "fail"


# --- the probe token ----------------------------------------------------------------------------


def test_render_masks_the_probe_token_and_writes_it_for_real() -> None:
    target = _target("production")
    secrets = SecretValues({"ADAPTO_PROBE_TOKEN": TOKEN})
    nginx = render_target(target, ["nginx"], secrets, "x")[0]
    assert f'"{TOKEN}" "";' in nginx.text
    assert "limit_req_zone $ai_platform_limit_key zone=ai_platform_api" in nginx.text
    assert TOKEN not in nginx.shown and f'"****({len(TOKEN)} chars)" "";' in nginx.shown
    without = render_nginx(target)
    assert "$http_x_adapto_probe" not in without.text and without.display is None


def test_a_probe_token_nginx_cannot_quote_is_refused() -> None:
    target = _target("production")
    with pytest.raises(AdaptoError, match="ADAPTO_PROBE_TOKEN"):
        probe_token_value(target, SecretValues({"ADAPTO_PROBE_TOKEN": 'abc"; allow all; #xx'}))


def test_the_probe_token_must_be_a_named_secret(tmp_path: Path) -> None:
    data = yaml.safe_load((REPO / "inventory.yaml").read_text())
    data["environments"]["sandbox"]["secrets"]["names"] = ["SUPABASE_ANON_KEY"]
    path = tmp_path / "inventory.yaml"
    with pytest.raises(InventoryError) as caught:
        parse_inventory(yaml.safe_dump(data, sort_keys=False), path)
    lines = caught.value.lines()
    assert len(lines) == 1 and "health.probe_token" in lines[0]
    assert "ADAPTO_PROBE_TOKEN" in lines[0] and "secrets.names" in lines[0]


@pytest.mark.tools
@pytest.mark.skipif(shutil.which("nginx") is None, reason="nginx is not installed")
def test_nginx_accepts_the_probe_token_map() -> None:
    target = _target("production")
    file = render_nginx(target, TOKEN)
    result = check_nginx(file, target)
    assert result.ok, result.output


@pytest.mark.tools
@pytest.mark.skipif(shutil.which("gixy") is None, reason="gixy is not installed")
def test_gixy_finds_nothing_in_the_probe_token_map(tmp_path: Path) -> None:
    from tests.test_render import gixy_issues

    issues = gixy_issues(render_nginx(_target("production"), TOKEN).text, tmp_path)
    assert issues == [], issues


# --- the sandbox's CA ----------------------------------------------------------------------------


def test_sandbox_up_replaces_an_old_self_signed_leaf_with_a_ca_signed_one(tmp_path: Path) -> None:
    from adapto_ops.sandbox.hosts import sandbox_host
    from adapto_ops.sandbox.nginx import ca_paths, ensure_cert
    from adapto_ops.tls import write_self_signed

    text = (REPO / "inventory.yaml").read_text().replace("/var/tmp/adapto-sandbox",
                                                         str(tmp_path))
    loaded = parse_inventory(text, tmp_path / "inventory.yaml")
    sh = sandbox_host(loaded, "sandbox", loaded.environment("sandbox").hosts[0])
    cert = Path(sh.env.nginx.certificate_path)
    key = Path(sh.env.nginx.certificate_key_path)
    ca, ca_key = ca_paths(sh)
    assert ca == Path(str(sh.env.health.ca_file)) and ca.parent == sh.sdir / "tls"
    # What an older `sandbox up` left: a self-signed leaf and no CA.
    write_self_signed(sh.env.nginx.server_names, cert, key)
    assert ensure_cert(sh) is True
    assert issued_by(cert, ca) and oct(ca_key.stat().st_mode & 0o777) == "0o600"
    assert ensure_cert(sh) is False  # good as it is: left alone
    write_signed(["other.adapto.test"], cert, key, ca, ca_key)
    assert ensure_cert(sh) is True  # not for the site's names: replaced
    assert describe_certificate(_der(cert), sh.env.nginx.canonical_name).startswith(
        "unknown issuer")  # valid for the name; only the CA is unknown without ca_file
