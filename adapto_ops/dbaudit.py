"""`adapto db check`: the Row Level Security audit of Supabase's database linter, as data.

The lints follow supabase/splinter (``rls_disabled_in_public``,
``policy_exists_rls_disabled``, ``rls_enabled_no_policy``,
``rls_references_user_metadata``, ``security_definer_view``,
``function_search_path_mutable``) plus two about the role the backend logs in
as (``app_role_bypasses_rls``, ``app_role_owns_tables``): on Supabase that role
is PostgREST's authenticator and is fine by construction; on a self-run
database it is where RLS quietly stops applying (an owner or a BYPASSRLS role
sees every row, whatever the policies say).

Each lint is one SELECT returning ``(schema, name, extra)`` rows, one row per
finding. They run in one read-only transaction with ``search_path = ''`` so
that policy expressions deparse with their schemas (``auth.jwt()``), which the
user_metadata lint matches on. The queries are run by the script in
:mod:`adapto_ops.commands.dbcheck` (on the host, or locally for
``--database-url``); this module only holds them and reads the answer.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from typing import Any

# Schemas that belong to PostgreSQL, Supabase's services or extensions, never to
# the application (splinter skips the same ones). `auth` holds auth.uid() & co.
SYSTEM_SCHEMAS = (
    "pg_catalog", "information_schema", "pg_toast", "auth", "extensions", "graphql",
    "graphql_public", "net", "pgsodium", "pgsodium_masks", "pgbouncer", "pgtle", "realtime",
    "storage", "supabase_functions", "supabase_migrations", "vault", "cron", "repack",
)
_SKIP = "(" + ", ".join(f"'{s}'" for s in SYSTEM_SCHEMAS) + ")"
# Objects an extension created are the extension's business (pg_depend 'e').
_NOT_EXTENSION = ("not exists (select 1 from pg_catalog.pg_depend d "
                  "where d.objid = {oid} and d.deptype = 'e')")


@dataclass(frozen=True)
class Lint:
    """One check: its name, level, what a finding means, how to fix it, and its query."""

    name: str
    level: str  # ERROR | WARN | INFO, as splinter grades them
    kind: str  # table | view | function | role
    problem: str  # a sentence about one finding: {object} and {extra} are filled in
    fix: str
    sql: str


LINTS: tuple[Lint, ...] = (
    Lint(
        "rls_disabled_in_public", "ERROR", "table",
        "table {object} is in public but Row Level Security is off: every role with a grant "
        "reads every row",
        "ALTER TABLE {object} ENABLE ROW LEVEL SECURITY, then add policies",
        f"""
select n.nspname, c.relname, ''
from pg_catalog.pg_class c join pg_catalog.pg_namespace n on n.oid = c.relnamespace
where c.relkind in ('r', 'p') and n.nspname = 'public' and not c.relrowsecurity
  -- a table with policies is reported once, by policy_exists_rls_disabled
  and not exists (select 1 from pg_catalog.pg_policy p where p.polrelid = c.oid)
  and {_NOT_EXTENSION.format(oid="c.oid")}
order by 1, 2""",
    ),
    Lint(
        "policy_exists_rls_disabled", "ERROR", "table",
        "table {object} has policies ({extra}) but Row Level Security is off, so they "
        "are ignored",
        "ALTER TABLE {object} ENABLE ROW LEVEL SECURITY",
        f"""
select n.nspname, c.relname, string_agg(p.polname, ', ' order by p.polname)
from pg_catalog.pg_policy p
join pg_catalog.pg_class c on c.oid = p.polrelid
join pg_catalog.pg_namespace n on n.oid = c.relnamespace
where c.relkind in ('r', 'p') and not c.relrowsecurity and n.nspname not in {_SKIP}
  and {_NOT_EXTENSION.format(oid="c.oid")}
group by n.nspname, c.relname
order by 1, 2""",
    ),
    Lint(
        "rls_enabled_no_policy", "INFO", "table",
        "table {object} has Row Level Security on but no policy: only roles that bypass "
        "RLS reach it, which may not be what was meant",
        "add the policies it needs (or one naming the only role meant to reach it)",
        f"""
select n.nspname, c.relname, ''
from pg_catalog.pg_class c join pg_catalog.pg_namespace n on n.oid = c.relnamespace
where c.relkind in ('r', 'p') and c.relrowsecurity and n.nspname not in {_SKIP}
  and not exists (select 1 from pg_catalog.pg_policy p where p.polrelid = c.oid)
  and {_NOT_EXTENSION.format(oid="c.oid")}
order by 1, 2""",
    ),
    Lint(
        "rls_references_user_metadata", "ERROR", "table",
        "policy {extra} on {object} trusts the JWT's user_metadata, which the user can "
        "edit (e.g. set their own role)",
        "decide on app_metadata or a table only admins write, never user_metadata",
        f"""
select n.nspname, c.relname, p.polname
from pg_catalog.pg_policy p
join pg_catalog.pg_class c on c.oid = p.polrelid
join pg_catalog.pg_namespace n on n.oid = c.relnamespace
cross join lateral (select coalesce(pg_catalog.pg_get_expr(p.polqual, p.polrelid), '')
                           || ' ' || coalesce(pg_catalog.pg_get_expr(p.polwithcheck,
                                                                     p.polrelid), '')
                    as text) e
where n.nspname not in {_SKIP}
  and e.text like '%user_metadata%'
  and (e.text like '%auth.jwt()%' or e.text like '%request.jwt.claim%')
order by 1, 2, 3""",
    ),
    Lint(
        "security_definer_view", "ERROR", "view",
        "view {object} runs as its owner ({extra} may read it), so the tables' Row Level "
        "Security is not applied to the reader",
        "ALTER VIEW {object} SET (security_invoker = on)",
        f"""
select n.nspname, c.relname, string_agg(r.rolname, ', ' order by r.rolname)
from pg_catalog.pg_class c
join pg_catalog.pg_namespace n on n.oid = c.relnamespace
join pg_catalog.pg_roles r
  on r.rolname in ('anon', 'authenticated') or r.rolname = session_user
where c.relkind = 'v' and n.nspname not in {_SKIP}
  and pg_catalog.has_table_privilege(r.oid, c.oid, 'SELECT')
  and r.oid <> c.relowner
  and not coalesce(lower(c.reloptions::text)::text[], '{{}}')
      && array['security_invoker=1', 'security_invoker=true', 'security_invoker=yes',
               'security_invoker=on']
  and {_NOT_EXTENSION.format(oid="c.oid")}
group by n.nspname, c.relname
order by 1, 2""",
    ),
    Lint(
        "function_search_path_mutable", "WARN", "function",
        "function {object}({extra}) has no fixed search_path: a caller's search_path "
        "decides which tables and functions its body means",
        "ALTER FUNCTION {object}({extra}) SET search_path = ''",
        f"""
select n.nspname, p.proname, pg_catalog.pg_get_function_identity_arguments(p.oid)
from pg_catalog.pg_proc p join pg_catalog.pg_namespace n on n.oid = p.pronamespace
where p.prokind in ('f', 'p') and n.nspname not in {_SKIP}
  and not exists (select 1 from unnest(coalesce(p.proconfig, '{{}}')) cfg
                  where cfg like 'search_path=%')
  and {_NOT_EXTENSION.format(oid="p.oid")}
order by 1, 2, 3""",
    ),
    Lint(
        "app_role_bypasses_rls", "ERROR", "role",
        "the application's role {object} is {extra}: Row Level Security never applies to it",
        "ALTER ROLE {object} NOSUPERUSER NOBYPASSRLS (give BYPASSRLS to service_role only)",
        """
select '', r.rolname,
       concat_ws(' and ', case when r.rolsuper then 'a superuser' end,
                          case when r.rolbypassrls then 'BYPASSRLS' end)
from pg_catalog.pg_roles r
where r.rolname = session_user and (r.rolsuper or r.rolbypassrls)""",
    ),
    Lint(
        "app_role_owns_tables", "ERROR", "table",
        "table {object} is owned by {extra}, the role the application logs in as (or one it "
        "inherits): an owner is not subject to the table's Row Level Security",
        "ALTER TABLE {object} OWNER TO the migration role",
        f"""
select n.nspname, c.relname, pg_catalog.pg_get_userbyid(c.relowner)
from pg_catalog.pg_class c
join pg_catalog.pg_namespace n on n.oid = c.relnamespace
join pg_catalog.pg_roles me on me.rolname = session_user
where c.relkind in ('r', 'p') and n.nspname not in {_SKIP}
  and (c.relowner = me.oid
       or (not me.rolsuper and pg_catalog.pg_has_role(me.oid, c.relowner, 'USAGE')))
  and {_NOT_EXTENSION.format(oid="c.oid")}
order by 1, 2""",
    ),
)

BY_NAME = {lint.name: lint for lint in LINTS}


@dataclass(frozen=True)
class Finding:
    """One problem: which lint, on which object, said in a sentence, with its fix."""

    lint: str
    level: str
    kind: str
    object: str
    detail: str
    fix: str


@dataclass
class DbCheck:
    """The answer of one run: who connected to what, and what was found (or the error)."""

    connected: bool = False
    error: str | None = None
    role: str = ""
    database: str = ""
    dsn: str = ""
    lints_run: int = 0
    findings: list[Finding] = field(default_factory=list)
    elapsed_ms: float | None = None

    @property
    def ok(self) -> bool:
        return self.connected and not self.error and not self.findings

    def as_dict(self) -> dict[str, Any]:
        """The JSON shape of ``db check --json``."""
        data = asdict(self)
        data["ok"] = self.ok
        return data


def _object(schema: str, name: str) -> str:
    return f"{schema}.{name}" if schema else name


def finding(lint: Lint, schema: str, name: str, extra: str) -> Finding:
    """The row one lint's query returned, as a finding in words."""
    obj = _object(schema, name)
    return Finding(lint.name, lint.level, lint.kind, obj,
                   lint.problem.format(object=obj, extra=extra),
                   lint.fix.format(object=obj, extra=extra))


def parse_output(stdout: str) -> DbCheck:
    """The script's one JSON line as :class:`DbCheck` (garbage becomes an error, never a crash)."""
    lines = [line for line in stdout.splitlines() if line.strip().startswith("{")]
    try:
        data = json.loads(lines[-1])
    except (IndexError, json.JSONDecodeError):
        tail = " ".join(stdout.split())[-200:]
        return DbCheck(error=f"the check gave no answer{': ' + tail if tail else ''}")
    out = DbCheck(connected=bool(data.get("connected")), error=data.get("error"),
                  role=str(data.get("role") or ""), database=str(data.get("database") or ""),
                  dsn=str(data.get("dsn") or ""), elapsed_ms=data.get("elapsed_ms"))
    if data.get("configured") is False:
        out.error = "DATABASE_URL is not set in the backend's .env"
    for name, rows in (data.get("results") or {}).items():
        lint = BY_NAME.get(name)
        if lint is None:
            continue
        out.lints_run += 1
        for row in rows:
            schema, obj, extra = (list(row) + ["", "", ""])[:3]
            out.findings.append(finding(lint, str(schema), str(obj), str(extra or "")))
    return out


def queries() -> dict[str, str]:
    """name -> SQL, what the script runs."""
    return {lint.name: lint.sql for lint in LINTS}
