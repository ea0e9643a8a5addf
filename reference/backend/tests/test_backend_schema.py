"""The database enforces isolation: RLS everywhere, a login role that cannot bypass it,
and migrations that apply whole or not at all."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import psycopg
import pytest
from backend_support import BACKEND, Database, migrate
from pg_cluster import provision

RUNBOOK_TABLES = {
    "users", "projects", "niches", "user_niches", "widget_development_settings",
    "telegram_settings", "dialogs", "chat_history", "knowledge_sources", "knowledge_chunks",
    "assistants", "chat_messages", "conversations",
}


def test_rls_is_enabled_on_the_13_tables_and_every_other(database: Database) -> None:
    rows = database.owner_execute(
        "select c.relname, c.relrowsecurity from pg_class c"
        " join pg_namespace n on n.oid = c.relnamespace"
        " where n.nspname = 'public' and c.relkind in ('r', 'p')")
    tables = dict(rows)
    assert set(tables) >= RUNBOOK_TABLES
    assert sum(tables[t] for t in RUNBOOK_TABLES) == 13
    assert [name for name, secured in tables.items() if not secured] == []


def test_the_login_role_cannot_bypass_rls(database: Database) -> None:
    ((bypass, superuser, inherit),) = database.owner_execute(
        "select rolbypassrls, rolsuper, rolinherit from pg_roles where rolname = 'ai_app'")
    assert (bypass, superuser, inherit) == (False, False, False)
    owned = database.owner_execute(
        "select count(*) from pg_class c join pg_roles r on r.oid = c.relowner"
        " where r.rolname = 'ai_app'")
    assert owned == [(0,)]
    with psycopg.connect(database.urls.app, autocommit=True) as conn:
        # As itself the login role has no privilege on any table at all...
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            conn.execute("select * from dialogs").fetchall()
        # ...and as authenticated without claims, RLS shows it nothing.
        with conn.transaction():
            conn.execute("set local role authenticated")
            for table in ("users", "dialogs", "chat_messages", "projects", "knowledge_chunks"):
                assert conn.execute(f"select count(*) from {table}").fetchone() == (0,), table


def test_rows_exist_that_the_login_role_did_not_see(database: Database) -> None:
    # The check above proves nothing on empty tables: put a row there as the owner.
    database.owner_execute(
        "insert into users (email, password_hash) values ('hidden@example.test', 'x')"
        " on conflict do nothing")
    assert database.owner_execute("select count(*) from users")[0][0] >= 1
    with psycopg.connect(database.urls.app, autocommit=True) as conn, conn.transaction():
        conn.execute("set local role authenticated")
        assert conn.execute("select count(*) from users").fetchone() == (0,)


def test_status_lists_nothing_pending_after_migrate(database: Database) -> None:
    result = migrate(database.urls.owner, "--status")
    assert result.returncode == 0, result.stderr
    files = len(list((BACKEND / "migrations").glob("*.sql")))
    assert result.stdout.strip().splitlines()[-1] == f"0 pending of {files}"


def test_migrate_without_its_url_is_one_line_exit_2() -> None:
    result = migrate(None)
    assert result.returncode == 2
    assert len(result.stderr.strip().splitlines()) == 1
    assert "MIGRATION_DATABASE_URL" in result.stderr


def _backend_copy(tmp_path: Path) -> Path:
    copy = tmp_path / "backend"
    shutil.copytree(BACKEND, copy, ignore=shutil.ignore_patterns(".venv", "__pycache__", "tests"))
    return copy


def test_a_failing_migration_rolls_back_and_exits_1_with_one_line(
        database: Database, tmp_path: Path) -> None:
    copy = _backend_copy(tmp_path)
    (copy / "migrations" / "0099_broken.sql").write_text(
        "create table half_done (id int);\n"
        "insert into half_done values (1);\n"
        "select * from no_such_table;\n")
    result = migrate(database.urls.owner, cwd=copy)
    assert result.returncode == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert "0099_broken.sql" in lines[0] and "rolled back" in lines[0]
    assert "owner-pw-1" not in result.stderr + result.stdout
    # Nothing of it stayed: not the table its first statement made, not a record.
    assert database.owner_execute("select to_regclass('public.half_done')") == [(None,)]
    assert database.owner_execute(
        "select count(*) from schema_migrations where version = '0099'") == [(0,)]
    status = migrate(database.urls.owner, "--status", cwd=copy)
    assert "pending 0099_broken.sql" in status.stdout


def test_an_edited_applied_migration_is_refused(database: Database, tmp_path: Path) -> None:
    copy = _backend_copy(tmp_path)
    with (copy / "migrations" / "0002_tables.sql").open("a") as sql:
        sql.write("\n-- edited after it was applied\n")
    result = migrate(database.urls.owner, cwd=copy)
    assert result.returncode == 1
    assert "0002_tables.sql changed after it was applied" in result.stderr


def test_unreachable_database_is_one_line_without_the_password() -> None:
    result = migrate("postgresql://ai_owner:secret-pw@127.0.0.1:1/nowhere")
    assert result.returncode == 1
    assert len(result.stderr.strip().splitlines()) == 1
    assert "secret-pw" not in result.stderr


def test_two_migrate_runs_at_once_apply_each_file_once(database: Database) -> None:
    """The advisory lock: two deploys (or a deploy and an operator) racing on a fresh database."""
    urls = provision(database.cluster, "aiplatform_race", owner=("race_owner", "pw-r1"),
                     app=("race_app", "pw-r2"))
    env = {k: v for k, v in os.environ.items() if k != "DATABASE_URL"}
    env["MIGRATION_DATABASE_URL"] = urls.owner
    runs = [subprocess.Popen([sys.executable, "-m", "aiplatform.migrate"], cwd=BACKEND, env=env,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
            for _ in range(2)]
    outcomes = [(run.wait(timeout=60), run.communicate()) for run in runs]
    assert [code for code, _ in outcomes] == [0, 0], outcomes
    files = len(list((BACKEND / "migrations").glob("*.sql")))
    summaries = sorted(out.strip().splitlines()[-1] for _, (out, _err) in outcomes)
    assert summaries == sorted([f"{files} applied, {files} in total",
                                f"0 applied, {files} in total"])
    again = migrate(urls.owner)
    assert again.returncode == 0 and again.stdout.strip() == f"0 applied, {files} in total"
