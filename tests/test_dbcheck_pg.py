"""`adapto db check` against a real PostgreSQL cluster.

Two databases in one throwaway cluster (adapto_ops.pg_cluster), both
provisioned as a deployment is and migrated with the bundled backend's own
migrate CLI: ``platform`` as it ships, which must be clean, and ``planted``,
the same plus one instance of each problem, each of which must be reported
exactly once, on the object planted. A BYPASSRLS login role and a wrong
password are checked too; the password never appears in any output.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from adapto_ops.dbaudit import LINTS
from adapto_ops.pg_cluster import Cluster, DatabaseUrls, provision, running_cluster
from adapto_ops.procedures.dbcheck import check_url
from tests.e2e_support import adapto, cli_env, pg_cluster_marks, run_to_files, said

pytestmark = pg_cluster_marks()

BACKEND = Path(__file__).resolve().parent.parent / "reference" / "backend"
APP_PASSWORD = "app-pw-Qx7c31"
BYPASS_PASSWORD = "bypass-pw-9Lm2"

# One of each problem, created by the migration owner as a careless migration would.
PLANT = """
SET ROLE owner;
CREATE TABLE public.open_notes (id int);
CREATE TABLE public.drafts (id int);
CREATE POLICY drafts_mine ON public.drafts USING (true);
CREATE TABLE public.audit_log (id int);
ALTER TABLE public.audit_log ENABLE ROW LEVEL SECURITY;
CREATE TABLE public.team_secrets (id int);
ALTER TABLE public.team_secrets ENABLE ROW LEVEL SECURITY;
CREATE POLICY admins_by_metadata ON public.team_secrets FOR SELECT TO authenticated
  USING ((auth.jwt() -> 'user_metadata' ->> 'role') = 'admin');
CREATE VIEW public.all_dialogs AS SELECT id, owner_id FROM public.dialogs;
GRANT SELECT ON public.all_dialogs TO authenticated;
CREATE FUNCTION public.dialog_count() RETURNS bigint LANGUAGE sql
  AS 'SELECT count(*) FROM dialogs';
CREATE TABLE public.app_cache (id int);
ALTER TABLE public.app_cache ENABLE ROW LEVEL SECURITY;
CREATE POLICY cache_all ON public.app_cache TO authenticated USING (true);
RESET ROLE;
ALTER TABLE public.app_cache OWNER TO app;
"""
EXPECTED = {
    "rls_disabled_in_public": "public.open_notes",
    "policy_exists_rls_disabled": "public.drafts",
    "rls_enabled_no_policy": "public.audit_log",
    "rls_references_user_metadata": "public.team_secrets",
    "security_definer_view": "public.all_dialogs",
    "function_search_path_mutable": "public.dialog_count",
    "app_role_owns_tables": "public.app_cache",
}


def migrate(owner_url: str) -> None:
    env = dict(os.environ, MIGRATION_DATABASE_URL=owner_url, PYTHONPATH=str(BACKEND))
    result = subprocess.run([sys.executable, "-m", "aiplatform.migrate"], cwd=BACKEND, env=env,
                            capture_output=True, text=True, timeout=120, check=False)
    assert result.returncode == 0, result.stderr


@pytest.fixture(scope="module")
def pg() -> Iterator[tuple[Cluster, DatabaseUrls, DatabaseUrls, str]]:
    with running_cluster() as cluster:
        roles = {"owner": ("owner", "owner-pw-1"), "app": ("app", APP_PASSWORD)}
        clean = provision(cluster, "platform", **roles)
        planted = provision(cluster, "planted", **roles)
        migrate(clean.owner)
        migrate(planted.owner)
        cluster.psql(PLANT, database="planted")
        cluster.psql(f"CREATE ROLE bypasser LOGIN BYPASSRLS PASSWORD '{BYPASS_PASSWORD}'; "
                     "GRANT CONNECT ON DATABASE platform TO bypasser")
        yield cluster, clean, planted, cluster.url("bypasser", BYPASS_PASSWORD, "platform")


def test_the_bundled_backend_schema_is_clean(pg: tuple) -> None:
    _cluster, clean, _planted, _bypass = pg
    check = check_url(clean.app)
    assert check.error is None and check.connected
    assert check.role == "app" and check.database == "platform"
    assert check.lints_run == len(LINTS)
    assert check.findings == [], [f.detail for f in check.findings]


def test_each_planted_problem_is_reported_exactly_once(pg: tuple) -> None:
    _cluster, _clean, planted, _bypass = pg
    check = check_url(planted.app)
    assert check.error is None
    found = sorted((f.lint, f.object) for f in check.findings)
    assert found == sorted(EXPECTED.items()), [f.detail for f in check.findings]
    by_lint = {f.lint: f for f in check.findings}
    assert "admins_by_metadata" in by_lint["rls_references_user_metadata"].detail
    assert "drafts_mine" in by_lint["policy_exists_rls_disabled"].detail
    assert "authenticated" in by_lint["security_definer_view"].detail
    assert "owned by app" in by_lint["app_role_owns_tables"].detail


def test_a_role_that_bypasses_rls_is_reported(pg: tuple) -> None:
    _cluster, _clean, _planted, bypass = pg
    check = check_url(bypass)
    assert [(f.lint, f.object) for f in check.findings] == [
        ("app_role_bypasses_rls", "bypasser")], [f.detail for f in check.findings]
    assert "BYPASSRLS" in check.findings[0].detail


def test_fixing_the_problem_clears_the_finding(pg: tuple) -> None:
    cluster, _clean, planted, _bypass = pg
    cluster.psql("ALTER FUNCTION public.dialog_count() SET search_path = ''", database="planted")
    try:
        lints = {f.lint for f in check_url(planted.app).findings}
        assert "function_search_path_mutable" not in lints
        assert len(lints) == len(EXPECTED) - 1
    finally:
        cluster.psql("ALTER FUNCTION public.dialog_count() RESET search_path",
                     database="planted")


def test_cli_json_exit_codes_and_no_password(pg: tuple) -> None:
    _cluster, clean, planted, _bypass = pg
    started = time.perf_counter()
    bad = adapto("db", "check", "--database-url", planted.app, "--json")
    elapsed = time.perf_counter() - started
    assert bad.returncode == 1, said(bad)
    assert APP_PASSWORD not in bad.stdout + bad.stderr
    report = json.loads(bad.stdout)
    assert report["ok"] is False and len(report["findings"]) == len(EXPECTED)
    assert "password=****" in report["dsn"]
    print(f"db check (CLI, 8 lints, planted database): {elapsed:.2f} s")
    good = adapto("db", "check", "--database-url", clean.app)
    assert good.returncode == 0, said(good)
    assert "clean" in good.stdout and APP_PASSWORD not in good.stdout + good.stderr
    text = adapto("db", "check", "--database-url", planted.app)
    assert text.returncode == 1
    assert text.stdout.count("fix: ") == len(EXPECTED), said(text)


def test_cli_wrong_password_is_one_line_without_the_secret(pg: tuple) -> None:
    cluster, _clean, _planted, _bypass = pg
    url = cluster.url("app", "wrong-Secret-77", "platform")
    result = adapto("db", "check", "--database-url", url)
    assert result.returncode == 1, said(result)
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "password authentication failed" in errors[0], said(result)
    assert "wrong-Secret-77" not in result.stdout + result.stderr


def test_cli_needs_exactly_one_target() -> None:
    neither = adapto("db", "check")
    assert neither.returncode == 2 and "either -e ENV" in neither.stderr, said(neither)
    both = adapto("db", "check", "-e", "sandbox", "--database-url", "postgresql://x@127.0.0.1/x")
    assert both.returncode == 2, said(both)


def test_cli_reads_the_url_from_the_environment(pg: tuple) -> None:
    _cluster, _clean, planted, _bypass = pg
    env = {**cli_env(), "ADAPTO_DATABASE_URL": planted.app}
    result = run_to_files([sys.executable, "-m", "adapto_ops", "db", "check", "--json"], env, 120)
    assert result.returncode == 1, said(result)
    assert len(json.loads(result.stdout)["findings"]) == len(EXPECTED)
    assert APP_PASSWORD not in result.stdout + result.stderr
