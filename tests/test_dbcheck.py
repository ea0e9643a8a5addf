"""`db check`'s pure parts: the command sent to a host, the script's answer read back."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

from adapto_ops.commands import dbcheck
from adapto_ops.dbaudit import LINTS, parse_output
from adapto_ops.layout import ReleaseLayout

LAYOUT = ReleaseLayout("/srv/app")


def test_the_command_is_short_and_the_script_travels_on_stdin() -> None:
    command, stdin = dbcheck.on_host(LAYOUT)
    assert command.startswith("if [ -x /srv/app/current/backend/.venv/bin/python ]; then ")
    assert "/srv/app/current/backend/.venv/bin/python -;" in command
    script = stdin.decode()
    # The script reads the URL on the host: neither the command nor the script holds one.
    assert "postgresql://" not in command + script
    assert "/srv/app/shared/.env" in script
    for lint in LINTS:
        assert lint.name in script
    compile(script, "<db check script>", "exec")


def test_without_the_venv_python_the_host_answers_in_json(tmp_path: Path) -> None:
    layout = ReleaseLayout(str(tmp_path))
    (tmp_path / "shared").mkdir()
    (tmp_path / "shared" / ".env").write_text("DATABASE_URL=postgresql://u:pw@h/db\n")
    command, stdin = dbcheck.on_host(layout)
    out = subprocess.run(["sh", "-c", command], input=stdin, capture_output=True, timeout=30,
                         check=False).stdout.decode()
    check = parse_output(out)
    assert check.error and "no python with psycopg" in check.error and "pw" not in out
    (tmp_path / "shared" / ".env").write_text("JWT_SECRET=x\n")
    out = subprocess.run(["sh", "-c", command], input=stdin, capture_output=True, timeout=30,
                         check=False).stdout.decode()
    assert parse_output(out).error == "DATABASE_URL is not set in the backend's .env"


def test_answers_are_read_tolerantly() -> None:
    assert parse_output("").error == "the check gave no answer"
    assert "garbage" in (parse_output("garbage here").error or "")
    answer = {"connected": True, "role": "app", "database": "db",
              "results": {lint.name: [] for lint in LINTS} | {"not_a_lint": [["x", "y", ""]]}}
    check = parse_output("warning first\n" + json.dumps(answer))
    assert check.ok and check.lints_run == len(LINTS)
    answer["results"]["rls_enabled_no_policy"] = [["public", "t", ""]]
    check = parse_output(json.dumps(answer))
    assert not check.ok and [f.object for f in check.findings] == ["public.t"]
    assert check.findings[0].fix.startswith("add the policies")


def test_every_lint_query_is_one_select_with_three_columns() -> None:
    for lint in LINTS:
        sql = lint.sql.strip().lower()
        assert sql.startswith("select") and ";" not in sql, lint.name
        lint.problem.format(object="public.t", extra="x")
        lint.fix.format(object="public.t", extra="x")
