"""`adapto audit` and `adapto db check -e` on a deployed sandbox (127.0.0.161).

The sandbox is real (sshd, nginx, PM2 and its own PostgreSQL, the reference
backend deployed and migrated). Its firewall is not managed and no monitor has
run, so those two lines warn; the bundled schema passes `db check`. Then a
table without RLS is planted through the migration owner's URL, and the audit
fails on that line, naming the table, in the table, in --json and in JUnit.
"""

from __future__ import annotations

import json
import time
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from adapto_ops.inventory.secrets import parse_dotenv
from tests.e2e_support import said, tools_missing
from tests.operate_sandbox import OpBox, Slot, deployed_sandbox

# 127.0.0.161 is this branch's slot; the TLS scan uses other ports on it, and this
# module's PostgreSQL listens on 5433 so the two sandboxes never meet.
SLOT = Slot("127.0.0.161", 2462, 8462, 8562, (3463, 3464))
POSTGRES_PORT = 5433

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.slow,
    pytest.mark.skipif(bool(tools_missing(("sshd",))), reason="needs nginx, pm2, node, sshd"),
]


def adjust(env: dict[str, Any]) -> None:
    env["sandbox"]["postgres_port"] = POSTGRES_PORT


@pytest.fixture(scope="module")
def box(tmp_path_factory: pytest.TempPathFactory) -> Iterator[OpBox]:
    with deployed_sandbox(tmp_path_factory.mktemp("audit"), SLOT, adjust=adjust) as sandbox:
        yield sandbox


def secrets(box: OpBox) -> dict[str, str]:
    return parse_dotenv((box.base / ".adapto" / "secrets.env").read_text())


def lines_of(document: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {f"{line['component']}:{line['measurement']}@{line['host']}": line
            for line in document["lines"]}


def test_audit_of_a_fresh_sandbox(box: OpBox, tmp_path: Path) -> None:
    junit = tmp_path / "audit.xml"
    started = time.perf_counter()
    result = box.cli("audit", "--json", "--junit", str(junit))
    print(f"adapto audit (one host): {time.perf_counter() - started:.1f} s")
    document = json.loads(result.stdout)
    lines = lines_of(document)
    firewall = lines["firewall:planned@sandbox1"]
    assert firewall["status"] == "warn" and "not managed" in firewall["output"], firewall
    uptime = lines["uptime:percent@environment"]
    assert uptime["status"] == "warn" and "no monitor history" in uptime["output"], uptime
    rls = lines["rls:findings@sandbox1"]
    assert rls["status"] == "pass", rls
    assert "passes all 8 RLS lints" in rls["output"]
    cert = lines["certificate:daysLeft@sandbox1"]
    assert cert["status"] == "pass" and "served: valid until" in cert["output"], cert
    assert "file:" in cert["output"]
    secrets_line = lines["secrets:complete@sandbox1"]
    assert secrets_line["status"] == "pass", secrets_line
    updates = lines["updates:security@sandbox1"]
    assert updates["status"] in ("pass", "warn") and "pending of" in updates["output"], updates
    assert lines["budgets:responseTime@sandbox1"]["status"] in ("pass", "warn")
    failing = [k for k, v in lines.items() if v["status"] == "fail"]
    assert result.returncode == (1 if failing else 0), (failing, said(result))
    # Only health may fail here, and only on a loaded machine (its line says which check).
    assert set(failing) <= {"health:checks@sandbox1"}, failing
    print(lines["health:checks@sandbox1"]["output"])
    assert junit.exists()
    assert ET.parse(junit).getroot().get("failures") == str(len(failing))
    # The database password never shows.
    password = secrets(box)["DATABASE_URL"].split("//", 1)[1].split("@")[0].split(":")[1]
    assert password and password not in result.stdout + result.stderr


def test_a_table_without_rls_fails_the_audit_with_evidence(box: OpBox, tmp_path: Path) -> None:
    import psycopg

    owner_url = secrets(box)["MIGRATION_DATABASE_URL"]
    with psycopg.connect(owner_url, autocommit=True) as conn:
        conn.execute("CREATE TABLE public.planted_open_notes (id int, body text)")
    try:
        started = time.perf_counter()
        check = box.cli("db", "check", "--json")
        print(f"adapto db check -e (on the host): {time.perf_counter() - started:.1f} s")
        assert check.returncode == 1, said(check)
        report = json.loads(check.stdout)
        assert [(f["lint"], f["object"]) for f in report["findings"]] == [
            ("rls_disabled_in_public", "public.planted_open_notes")], report
        assert report["where"] == "op/sandbox1" and "password=****" in report["dsn"]

        junit = tmp_path / "audit.xml"
        result = box.cli("audit", "--json", "--junit", str(junit))
        assert result.returncode == 1, said(result)
        document = json.loads(result.stdout)
        assert document["status"] == "fail"
        rls = lines_of(document)["rls:findings@sandbox1"]
        assert rls["status"] == "fail"
        assert "rls_disabled_in_public: public.planted_open_notes" in rls["output"], rls
        assert rls["next_command"] == "adapto db check -e op"
        failures = {case.get("name"): case.find("failure").text or ""  # type: ignore[union-attr]
                    for case in ET.parse(junit).getroot().iter("testcase")
                    if case.find("failure") is not None}
        assert "planted_open_notes" in failures.pop("rls:findings")
        # On a loaded machine a health check may fail beside it (it says which): only health.
        assert set(failures) <= {"health:checks"}, failures
        print(failures.get("health:checks", ""))

        table = box.cli("audit")
        assert table.returncode == 1
        assert "audit of op: fail" in table.stdout and "planted_open_notes" in table.stdout
    finally:
        with psycopg.connect(owner_url, autocommit=True) as conn:
            conn.execute("DROP TABLE public.planted_open_notes")
