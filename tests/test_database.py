"""The database diagnosis's parsing and classification, and health's database checks (pure)."""

from __future__ import annotations

import dataclasses
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from adapto_ops.commands import dbscript
from adapto_ops.commands import facts as facts_cmd
from adapto_ops.dbdiag import (
    Connections,
    DbSession,
    connection_finding,
    connections_finding,
    findings,
    migrations_finding,
    parse_diagnosis,
    sessions_finding,
)
from adapto_ops.facts import parse_facts
from adapto_ops.health.classify import NextCommands, http_kind
from adapto_ops.health.onhost import HostChecks
from adapto_ops.inventory.loader import load_inventory
from adapto_ops.layout import ReleaseLayout
from adapto_ops.recover.database import pending_from_status
from adapto_ops.render.configs import Target
from tests.e2e_support import REPO

TARGET = {"host": "db.example.com", "port": 5432, "user": "app", "dbname": "platform",
          "sslmode": "require"}


def answer(**fields: Any) -> str:
    base: dict[str, Any] = {"mode": "diagnose", "configured": True, "target": TARGET,
                            "dsn": "user=app password=**** host=db.example.com",
                            "steps": [{"name": "dns", "ok": True, "detail": "ok"},
                                      {"name": "tcp", "ok": True, "detail": "accepts"}]}
    return "some warning first\n" + json.dumps({**base, **fields}) + "\n"


def test_garbage_and_missing_answers_become_an_error_not_an_exception() -> None:
    for text in ("", "Traceback (most recent call last):\n  boom", "{not json", "[1, 2]"):
        d = parse_diagnosis(text)
        assert d.error and d.error.startswith("the database check gave no answer")
        assert connection_finding(d).level == "fail"
    missing = parse_diagnosis(json.dumps({"steps": [], "error": "no python with psycopg at /x"}))
    assert connection_finding(missing).line == "no python with psycopg at /x"
    unread = parse_diagnosis(json.dumps({"env_error": "/app/shared/.env: No such file"}))
    assert connection_finding(unread).line == "cannot read /app/shared/.env: No such file"


def test_not_configured_is_fine() -> None:
    d = parse_diagnosis(json.dumps({"mode": "check", "steps": [], "configured": False}))
    assert d.configured is False
    assert connection_finding(d).level == "ok" and "not configured" in connection_finding(d).line
    assert findings(d, 30) == [connection_finding(d)]


@pytest.mark.parametrize(("step", "detail"), [
    ("dns", "db.example.com does not resolve: Name or service not known"),
    ("tcp", "10.0.0.5:5432: connection refused (is PostgreSQL running?)"),
    ("tls", "TLS required/failed (sslmode=require): server does not support SSL"),
    ("auth", "authentication failed for user app"),
    ("database", "database platform does not exist"),
    ("connections", "too many clients: max_connections exhausted (sorry, too many clients)"),
])
def test_the_first_failed_step_is_named_with_where(step: str, detail: str) -> None:
    steps = [{"name": "dns", "ok": step != "dns", "detail": "x"}]
    if step != "dns":
        steps.append({"name": step, "ok": False, "detail": detail})
    else:
        steps = [{"name": "dns", "ok": False, "detail": detail}]
    d = parse_diagnosis(answer(steps=steps))
    found = connection_finding(d)
    assert found.level == "fail" and detail in found.line
    assert found.line.endswith("(app@db.example.com:5432/platform)")
    assert not d.connected and connections_finding(d) is None and sessions_finding(d, 30) is None


@pytest.mark.parametrize(("used", "level"), [(10, "ok"), (78, "warn"), (93, "fail"), (97, "fail")])
def test_connections_against_max_connections(used: int, level: str) -> None:
    d = parse_diagnosis(answer(latency_ms=3.0,
                               connections={"max": 100, "reserved": 3, "used": used}))
    found = connections_finding(d)
    assert found is not None and found.level == level
    assert f"{used} of 97 usable" in found.line and "max_connections 100" in found.line
    if level == "fail":
        assert found.line.startswith("too many clients")
    assert Connections(5, 10, 1).usable == 1  # never a division by zero


def test_sessions_are_listed_without_their_values() -> None:
    sessions = [{"pid": 41, "user": "app", "state": "idle in transaction", "age_s": 312.4,
                 "query": "update dialogs set title = '…'", "backend_start": "t1",
                 "idle_in_transaction": True, "blocking": [77, 78]},
                {"pid": "not a pid"}]
    d = parse_diagnosis(answer(latency_ms=3.0, sessions=sessions,
                               connections={"max": 100, "reserved": 3, "used": 5}))
    assert d.sessions == (DbSession(41, "app", "idle in transaction", 312.4,
                                    "update dialogs set title = '…'", "t1", True, (77, 78)),)
    assert d.sessions[0].line == ("pid 41 app idle in transaction 312 s, blocking 77, 78: "
                                  "update dialogs set title = '…'")
    assert d.sessions[0].handle() == {"pid": 41, "backend_start": "t1"}
    found = sessions_finding(d, 30)
    assert found is not None and found.level == "fail"
    assert found.line == "1 idle in a transaction over 30 s, 1 blocking others"


def test_migrations_from_status_override_health_and_size_is_reported() -> None:
    d = parse_diagnosis(answer(latency_ms=3.0, migrations={"pending": 2},
                               connections={"max": 100, "reserved": 3, "used": 5},
                               size={"bytes": 8502631, "pretty": "8303 kB"}))
    assert migrations_finding(d).line == "2 pending"  # type: ignore[union-attr]
    assert migrations_finding(d, pending=0).line == "none pending"  # type: ignore[union-attr]
    checks = [f.check for f in findings(d, 30)]
    assert checks == ["connection", "connections", "sessions", "migrations", "size"]
    assert findings(d, 30)[-1].line == "8303 kB (8502631 bytes)"
    silent = parse_diagnosis(answer(latency_ms=3.0, health_error="Connection refused"))
    assert "did not answer (Connection refused)" in migrations_finding(silent).line  # type: ignore[union-attr]
    assert pending_from_status("pending 0003_x.sql\n1 pending of 3\n") == 1
    assert pending_from_status("0 pending of 3") == 0
    assert pending_from_status("migrate: cannot connect") is None


# --- health ---------------------------------------------------------------------------------


LOADED = load_inventory(REPO / "inventory.yaml")


def _target() -> Target:
    env = LOADED.environment("sandbox")
    return Target.of(LOADED.inventory.project, "sandbox", env, env.hosts[0])


def _checks(database: dict[str, Any] | None, direct: str, status: int = 200) -> dict[str, Any]:
    ports = _target().env.backend.ports
    body = json.dumps({"status": "ok" if status == 200 else "failing",
                       "config": {"JWT_SECRET": True},
                       **({"database": database} if database is not None else {}),
                       "migrations": {"pending": (database or {}).pop("pending", 0)}})
    probe = [({"status": 200, "ms": 2.0, "body": body} if status == 200
              else {"status": status, "error": f"HTTP {status} {body}"})
             | {"url": f"http://127.0.0.2:{p}/api/health"} for p in ports]
    facts = dataclasses.replace(parse_facts("sandbox1", ""), probe_output=json.dumps(probe),
                                database_output=direct)
    checks = HostChecks(_target(), facts, NextCommands("sandbox", "sandbox1"), 5.0).all()
    return {c.key: c for c in checks if c.component == "database"}


def test_health_database_checks_pass_warn_and_fail() -> None:
    ok = _checks({"status": "ok", "latency_ms": 1.5}, answer(mode="check", latency_ms=4.2))
    assert ok["database:backendView"].status == "pass"
    assert ok["database:backendView"].observed_value == 1.5
    assert ok["database:connect"].status == "pass"
    assert ok["database:connect"].observed_value == 4.2

    pending = _checks({"status": "ok", "latency_ms": 1.5, "pending": 3}, answer(latency_ms=4.2))
    assert pending["database:backendView"].status == "warn"
    assert "3 migration(s) pending" in pending["database:backendView"].output

    down = _checks({"status": "unreachable", "error": "OperationalError: refused"},
                   answer(steps=[{"name": "tcp", "ok": False, "detail": "connection refused"}]),
                   status=503)
    for key in ("database:backendView", "database:connect"):
        assert down[key].status == "fail" and down[key].kind == "database"
        assert down[key].next_command == "adapto recover database -e sandbox"
    assert "TCP: connection refused" in down["database:connect"].output


def test_health_not_configured_passes() -> None:
    off = _checks({"status": "not configured"},
                  json.dumps({"mode": "check", "steps": [], "configured": False}))
    assert {c.status for c in off.values()} == {"pass"}
    assert {c.output for c in off.values()} == {"not configured"}


def test_a_health_503_is_database_not_authentication() -> None:
    body = json.dumps({"status": "failing", "config": {"JWT_SECRET": True},
                       "database": {"status": "unreachable", "error": "TimeoutError"}})
    assert http_kind(503, body) == "database"
    failing = json.dumps({"status": "failing", "config": {"JWT_SECRET": True},
                          "database": {"status": "ok"}})
    assert http_kind(503, failing) == "500"


# --- the script and the facts command, under sh -------------------------------------------


def _fake_release(root: Path, env_text: str | None) -> ReleaseLayout:
    layout = ReleaseLayout(str(root))
    venv = root / "releases" / "r1" / "backend" / ".venv" / "bin"
    venv.mkdir(parents=True)
    (venv / "python").symlink_to(sys.executable)
    (root / "current").symlink_to(root / "releases" / "r1")
    (root / "shared").mkdir()
    if env_text is not None:
        (root / "shared" / ".env").write_text(env_text)
    return layout


def test_gather_runs_the_database_check_beside_the_probe(tmp_path: Path) -> None:
    layout = _fake_release(tmp_path, "OTHER=1\n")
    env = _target().env.model_copy(update={"paths": _target().env.paths.model_copy(
        update={"root": str(tmp_path)})})
    command = facts_cmd.gather(env, "root", probe="cat", database=dbscript.command("check", layout))
    result = subprocess.run(["sh", "-c", command], input="the-token", capture_output=True,
                            text=True, timeout=60, check=False)
    facts = parse_facts("h", result.stdout)
    assert facts.probe_output == "the-token"  # the probe still gets stdin
    assert parse_diagnosis(facts.database_output).configured is False


def test_the_script_reports_a_missing_env_file_and_python(tmp_path: Path) -> None:
    layout = _fake_release(tmp_path, None)
    command, stdin = dbscript.command_with_stdin("diagnose", layout)
    out = subprocess.run(["sh", "-c", command], input=stdin, capture_output=True, timeout=60,
                         check=False).stdout.decode()
    assert parse_diagnosis(out).error == f"cannot read {layout.env_file}: No such file or directory"
    (tmp_path / "current").unlink()  # no python: a node backend, or no release yet

    def without_python() -> Any:
        return parse_diagnosis(subprocess.run(["sh", "-c", command], input=stdin,
                                              capture_output=True, timeout=60,
                                              check=False).stdout.decode())

    assert without_python().configured is False  # no .env, so no DATABASE_URL either
    Path(layout.env_file).write_text("export DATABASE_URL=postgresql://a:b@h/d\n")
    unchecked = without_python()
    assert unchecked.unchecked and "no python with psycopg at" in (unchecked.error or "")
    assert connection_finding(unchecked).level == "warn"


def test_health_without_python_warns_and_a_backend_without_a_database_passes() -> None:
    unchecked = json.dumps({"mode": "check", "steps": [], "unchecked": True,
                            "error": "no python with psycopg at /x"})
    found = _checks(None, unchecked)
    assert found["database:connect"].status == "warn"
    assert found["database:connect"].output == "no python with psycopg at /x"
    assert found["database:backendView"].status == "pass"
    assert found["database:backendView"].output == "the backend's health reports no database"
