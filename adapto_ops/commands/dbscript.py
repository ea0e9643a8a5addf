"""The database diagnosis that runs ON the host, with the release venv's python and psycopg.

The database may listen on the host's loopback only, so the host is where it
is reached from. One Python script, fed to the venv's python on its stdin (a
heredoc: never argv, which every user of the host can read), reads
``DATABASE_URL`` from the shared ``.env`` itself, so the secret never crosses
the wire, and prints one JSON line. It never prints the password: the DSN it
reports is masked, and error texts are stripped of it.

Modes: ``check`` (health: DNS, TCP, connect, one round trip, latency) and
``diagnose`` (recover: also connections against max_connections, sessions
idle in a transaction or blocking others, pending migrations from the
backend's /api/health, database size). ``terminate`` lists sessions
(pid + backend_start) to end first; each is ended only if it still is the
same session and still matches what it was listed for.
:mod:`adapto_ops.dbdiag` parses the output.
"""

from __future__ import annotations

import json
import shlex

from adapto_ops.layout import ReleaseLayout

# Shared by every script adapto feeds to a python on the host (this one and
# commands/dbcheck's): clean() strips the secrets collected in SECRET, finish() prints
# the one JSON line `out`, read_env() is the one parser of the .env on the host, and
# connection_params() the one way from a URL to psycopg and its parts.
SCRIPT_HELPERS = r'''
def clean(text):
    text = " ".join(str(text).split())
    for value in SECRET:
        if value:
            text = text.replace(value, "****")
    return text[:300]

def finish():
    print(json.dumps(out))
    sys.exit(0)

def read_env(path):
    values = {}
    try:
        text = open(path, encoding="utf-8").read()
    except OSError as exc:
        return None, exc.strerror or str(exc)
    for raw in text.split("\n"):
        line = raw.strip()
        if not line or line.startswith("#") or "=" not in line:
            continue
        key, _, value = line[7:].partition("=") if line.startswith("export ") \
            else line.partition("=")
        value = value.strip()
        if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
            quote, value = value[0], value[1:-1]
            if quote == '"':
                value = re.sub(r'\\(n|r|"|\\)',
                               lambda m: {"n": "\n", "r": "\r"}.get(m[1], m[1]), value)
        values[key.strip()] = value
    return values, None

def connection_params(url, what):
    """(psycopg, the URL's parts), or finish(): no URL, no psycopg, a URL it cannot parse."""
    if not url:
        out["configured"] = False
        finish()
    out["configured"] = True
    try:
        import psycopg
        from psycopg.conninfo import conninfo_to_dict
    except ImportError as exc:
        out["error"] = f"psycopg is not installed in {sys.executable}: {exc}"
        finish()
    try:
        params = conninfo_to_dict(url)
    except Exception as exc:
        out["error"] = what + " cannot be parsed: " + type(exc).__name__
        finish()
    SECRET.extend([params.get("password") or "", url])
    return psycopg, params

'''

DB_SCRIPT = r'''
import json, os, re, socket, sys, time
CONFIG = json.loads(__CONFIG__)
out = {"mode": CONFIG["mode"], "steps": []}
SECRET = []
''' + SCRIPT_HELPERS + r'''
def step(name, ok, detail, ms=None):
    out["steps"].append({"name": name, "ok": ok, "detail": clean(detail), "ms": ms})
    return ok

values, why = read_env(CONFIG["env_file"])
if values is None:
    out["env_error"] = f"{CONFIG['env_file']}: {why}"
    finish()
url = values.get("DATABASE_URL", "")
psycopg, params = connection_params(url, "DATABASE_URL")
host = (params.get("host") or values.get("PGHOST") or "localhost").split(",")[0]
port = int(str(params.get("port") or 5432).split(",")[0])
out["target"] = {"host": host, "port": port, "user": params.get("user") or "",
                 "dbname": params.get("dbname") or "",
                 "sslmode": params.get("sslmode") or "prefer"}
masked = {k: ("****" if k == "password" else v) for k, v in params.items()}
out["dsn"] = " ".join(f"{k}={v}" for k, v in masked.items())

# 1. DNS, 2. TCP: named before the driver mixes them into one message.
if host.startswith("/"):
    sock_path = f"{host}/.s.PGSQL.{port}"
    if not step("socket", os.path.exists(sock_path), f"unix socket {sock_path}"
                + ("" if os.path.exists(sock_path) else " does not exist")):
        finish()
else:
    started = time.perf_counter()
    try:
        addresses = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except socket.gaierror as exc:
        step("dns", False, f"{host} does not resolve: {exc.strerror or exc}")
        finish()
    address = addresses[0][4][0]
    step("dns", True, f"{host} -> {address}", round((time.perf_counter() - started) * 1000, 1))
    started = time.perf_counter()
    try:
        socket.create_connection((address, port), timeout=CONFIG["timeout_s"]).close()
    except OSError as exc:
        reason = ("connection refused (is PostgreSQL running?)"
                  if isinstance(exc, ConnectionRefusedError)
                  else "timed out" if isinstance(exc, TimeoutError) else exc.strerror or str(exc))
        step("tcp", False, f"{address}:{port}: {reason}")
        finish()
    step("tcp", True, f"{address}:{port} accepts", round((time.perf_counter() - started) * 1000, 1))

# 3. TLS and authentication: what the server said, by SQLSTATE or message.
started = time.perf_counter()
try:
    conn = psycopg.connect(url, connect_timeout=max(1, int(CONFIG["timeout_s"])),
                           autocommit=True, application_name="adapto-db-check")
except psycopg.Error as exc:
    state = getattr(exc, "sqlstate", None) or ""
    text = str(exc).strip().splitlines()
    message = clean(text[-1] if text else type(exc).__name__)
    # libpq says "connection to server at ... failed: FATAL:  <reason>": the reason is it.
    message = re.split(r"(?:FATAL|ERROR):\s*", message)[-1]
    full = " ".join(str(exc).split()).lower()
    user = out["target"]["user"]
    if state == "53300" or "too many clients" in full or "connection slots are reserved" in full:
        name, detail = "connections", f"too many clients: max_connections exhausted ({message})"
    elif state in ("28P01", "28000") or "password authentication failed" in full \
            or "role" in full and "does not exist" in full:
        name = "auth"
        detail = (f"authentication failed for user {user}"
                  if "password" in full else message)
        if "pg_hba.conf" in full:
            detail = f"rejected by pg_hba.conf (TLS required?): {message}"
    elif state == "3D000" or ("database" in full and "does not exist" in full):
        name, detail = "database", f"database {out['target']['dbname']} does not exist"
    elif "ssl" in full or "tls" in full or "certificate" in full:
        name, detail = "tls", f"TLS required/failed (sslmode={out['target']['sslmode']}): {message}"
    elif state == "57P03" or "starting up" in full or "shutting down" in full:
        name, detail = "server", message
    else:
        name, detail = "connect", message
    out["connect_error"] = {"step": name, "sqlstate": state}
    step(name, False, detail)
    finish()
ssl_in_use = bool(getattr(conn.pgconn, "ssl_in_use", False))
step("tls", True, ("in use" if ssl_in_use else "not in use")
     + f" (sslmode={out['target']['sslmode']})")
conn.execute("set statement_timeout = 5000")
conn.execute("select 1")
out["latency_ms"] = round((time.perf_counter() - started) * 1000, 1)
step("auth", True, f"connected as {out['target']['user']} to {out['target']['dbname']}",
     out["latency_ms"])
started = time.perf_counter()
conn.execute("select 1")
out["roundtrip_ms"] = round((time.perf_counter() - started) * 1000, 2)
out["server_version"] = conn.info.parameter_status("server_version")
if CONFIG["mode"] == "check":
    finish()

SESSIONS = """
select pid, coalesce(usename, '?') as usename, coalesce(state, '?') as state,
       coalesce(extract(epoch from now() - coalesce(xact_start, state_change)), 0) as age_s,
       coalesce(query, '') as query, backend_start::text as backend_start,
       pg_blocking_pids(pid) as blocked_by
from pg_stat_activity
where pid <> pg_backend_pid() and backend_type = 'client backend'
"""

def literals_out(query):
    # The text may hold literal values: show its shape, never the values.
    return re.sub(r"'(?:[^']|'')*'", "'…'", " ".join(query.split()))[:CONFIG["query_chars"]]

def sessions():
    rows = conn.execute(SESSIONS).fetchall()
    blockers = {b for row in rows for b in (row[6] or [])}
    found = []
    for pid, user, state, age, query, started_at, blocked_by in rows:
        idle = state.startswith("idle in transaction") and age >= CONFIG["idle_s"]
        if idle or pid in blockers:
            found.append({"pid": pid, "user": user, "state": state, "age_s": round(float(age), 1),
                          "query": literals_out(query), "backend_start": started_at,
                          "idle_in_transaction": idle, "blocking": sorted(
                              r[0] for r in rows if pid in (r[6] or []))})
    return found

ended = []
for wanted in CONFIG.get("terminate") or []:
    still = [s for s in sessions() if s["pid"] == wanted["pid"]
             and s["backend_start"] == wanted["backend_start"]]
    if not still:
        ended.append({"pid": wanted["pid"], "ok": True, "detail": "already gone"})
        continue
    try:
        ok = conn.execute("select pg_terminate_backend(%s)", (wanted["pid"],)).fetchone()[0]
        ended.append({"pid": wanted["pid"], "ok": bool(ok),
                      "detail": "terminated" if ok else "not terminated"})
    except psycopg.Error as exc:
        ended.append({"pid": wanted["pid"], "ok": False, "detail": clean(exc)})
if ended:
    out["terminated"] = ended
    time.sleep(0.2)  # the server needs a moment to remove them from pg_stat_activity

row = conn.execute(
    "select current_setting('max_connections')::int,"
    " current_setting('superuser_reserved_connections')::int,"
    " coalesce(current_setting('reserved_connections', true), '0')::int,"
    " (select count(*) from pg_stat_activity where backend_type = 'client backend')").fetchone()
out["connections"] = {"max": row[0], "reserved": row[1] + row[2], "used": row[3]}
out["sessions"] = sessions()
size = conn.execute("select pg_database_size(current_database()),"
                    " pg_size_pretty(pg_database_size(current_database()))").fetchone()
out["size"] = {"bytes": size[0], "pretty": size[1]}
conn.close()
if CONFIG.get("health_url"):
    import urllib.request, urllib.error
    try:
        with urllib.request.urlopen(CONFIG["health_url"], timeout=CONFIG["timeout_s"]) as r:
            body = r.read(20000)
    except urllib.error.HTTPError as exc:
        body = exc.read(20000)
    except OSError as exc:
        body = b""
        out["health_error"] = clean(getattr(exc, "reason", exc))
    try:
        data = json.loads(body or b"null")
    except ValueError:
        data = None
    if isinstance(data, dict):
        out["migrations"] = data.get("migrations")
        out["backend_database"] = {k: v for k, v in (data.get("database") or {}).items()
                                   if k in ("status", "latency_ms", "error")}
finish()
'''

# Health waits this long for the database; recover a little longer.
CHECK_TIMEOUT_S = 3.0
IDLE_IN_TRANSACTION_S = 30.0


def venv_python(layout: ReleaseLayout) -> str:
    """The current release's backend venv python (psycopg is in it)."""
    return f"{layout.current}/backend/.venv/bin/python"


def script(mode: str, layout: ReleaseLayout, *, health_url: str | None = None,
           terminate: list[dict[str, object]] | None = None,
           idle_s: float = IDLE_IN_TRANSACTION_S, timeout_s: float = CHECK_TIMEOUT_S,
           query_chars: int = 80) -> str:
    """The script with its configuration (no secret: it reads DATABASE_URL itself)."""
    config = {"mode": mode, "env_file": layout.env_file, "health_url": health_url,
              "terminate": terminate or [], "idle_s": idle_s, "timeout_s": timeout_s,
              "query_chars": query_chars}
    return DB_SCRIPT.replace("__CONFIG__", repr(json.dumps(config)))


MARK = "ADAPTO_DB_SCRIPT_END"


def without_python(mode: str, layout: ReleaseLayout) -> str:
    """What to print when the venv's python is missing (no release yet, or a node backend).

    No DATABASE_URL in the .env: "not configured", as the script would say.
    Otherwise one JSON line whose error names the missing python.
    """
    unconfigured = json.dumps({"mode": mode, "steps": [], "configured": False})
    missing = json.dumps({"mode": mode, "steps": [], "unchecked": True,
                          "error": f"no python with psycopg at {venv_python(layout)} "
                                   "to check the database from the host"})
    env_file = shlex.quote(layout.env_file)
    return (f"if grep -Eq '^(export )?DATABASE_URL=.' {env_file} 2>/dev/null; "
            f"then echo {shlex.quote(missing)}; else echo {shlex.quote(unconfigured)}; fi")


def command(mode: str, layout: ReleaseLayout, **options: object) -> str:
    """Run the script with the venv's python, the script on stdin (a heredoc).

    Without that python it prints one JSON line still (see ``without_python``).
    """
    python = shlex.quote(venv_python(layout))
    body = script(mode, layout, **options)  # type: ignore[arg-type]
    return (f"if [ -x {python} ]; then {python} - <<'{MARK}'\n"
            f"{body}\n{MARK}\nelse {without_python(mode, layout)}; fi")


def command_with_stdin(mode: str, layout: ReleaseLayout, **options: object) -> tuple[str, bytes]:
    """The same run with the script as the command's own stdin: (command, stdin).

    What `recover database` uses: the command stays one short line (what a
    --dry-run shows), the script travels as data.
    """
    body = script(mode, layout, **options)  # type: ignore[arg-type]
    return stdin_command(mode, layout), body.encode()


def stdin_command(mode: str, layout: ReleaseLayout) -> str:
    """The venv's python running a script read from stdin, or without_python(mode)."""
    python = shlex.quote(venv_python(layout))
    return f"if [ -x {python} ]; then {python} -; else {without_python(mode, layout)}; fi"
