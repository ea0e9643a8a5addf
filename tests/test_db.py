"""The pure parts of the database work: migrate commands, status parsing, sandbox secrets."""

from __future__ import annotations

import os
import stat
import subprocess
from pathlib import Path

import pytest

from adapto_ops.commands import db as db_cmd
from adapto_ops.sandbox.pg_cluster import Cluster
from adapto_ops.sandbox.postgres import _password, names, set_secrets


def test_status_output_is_parsed_into_names_and_total() -> None:
    out = "pending 0004_notes.sql\npending 0005_tags.sql\n2 pending of 5\n"
    assert db_cmd.parse_status(out) == (["0004_notes.sql", "0005_tags.sql"], 5)
    assert db_cmd.parse_status("0 pending of 3\n") == ([], 3)
    assert db_cmd.parse_status("something else\n") == ([], None)


@pytest.mark.skipif(not os.access("/usr/bin/node", os.X_OK), reason="node not installed")
def test_migrate_runs_in_the_folder_with_the_env_file_never_on_the_command_line(
        tmp_path: Path) -> None:
    env_file = tmp_path / ".env.next-1"
    secret = 'pa$s "w\\ord'
    env_file.write_text('# header\nDATABASE_URL="pa$s \\"w\\\\ord"\nPLAIN=x\n')
    command = db_cmd.migrate(str(tmp_path), str(env_file),
                             'printf "%s|%s|%s" "$DATABASE_URL" "$PLAIN" "$(pwd)"; exit 3')
    assert secret not in command
    result = subprocess.run(["sh", "-c", command], capture_output=True, text=True, check=False)
    assert result.returncode == 3
    assert result.stdout == f"{secret}|x|{tmp_path}"
    status = db_cmd.migrate(str(tmp_path), str(env_file), "echo", status=True)
    assert subprocess.run(["sh", "-c", status], capture_output=True, text=True,
                          check=False).stdout == "--status\n"
    missing = db_cmd.migrate(str(tmp_path), str(tmp_path / "nope"), "true")
    result = subprocess.run(["sh", "-c", missing], capture_output=True, text=True, check=False)
    assert result.returncode == 2 and "cannot read" in result.stderr


def test_names_follow_the_project() -> None:
    assert names("ai-platform") == ("ai_platform", "ai_platform_owner", "ai_platform_app")


def test_a_password_is_kept_only_for_the_same_role_on_the_same_cluster() -> None:
    pg = Cluster(Path("/x"), Path("/bin"), 5432, "127.0.0.9")
    url = pg.url("app", "s3cr/et", "db")
    assert _password(url, "app", pg, "db") == "s3cr/et"
    for other in (pg.url("other", "s3cr/et", "db"), pg.url("app", "s3cr/et", "db2"),
                  Cluster(Path("/x"), Path("/bin"), 5433, "127.0.0.9").url("app", "p", "db"),
                  None, "not a url"):
        fresh = _password(other, "app", pg, "db")
        assert fresh != "s3cr/et" and len(fresh) >= 24


def test_set_secrets_replaces_lines_keeps_others_and_is_0600(tmp_path: Path) -> None:
    path = tmp_path / "secrets.env"
    path.write_text("A=1\nDATABASE_URL=old\nexport B=2\n")
    path.chmod(0o644)
    assert set_secrets(path, {"DATABASE_URL": "new", "MIGRATION_DATABASE_URL": "m"})
    assert path.read_text() == "A=1\nexport B=2\nDATABASE_URL=new\nMIGRATION_DATABASE_URL=m\n"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert not set_secrets(path, {"DATABASE_URL": "new"})
