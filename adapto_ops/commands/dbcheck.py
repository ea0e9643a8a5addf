"""The script behind `adapto db check`: run the RLS lints, print one JSON line.

Like :mod:`adapto_ops.commands.dbscript` (and sharing its SCRIPT_HELPERS), it is
fed to a python with psycopg on its stdin: on the host, the release venv's
python reading ``DATABASE_URL`` from the shared .env itself (the database may
listen on the host's loopback only, and the URL never crosses the wire); or,
for ``--database-url``, adapto's own python with the URL in its environment
(never argv). It never prints the password: the DSN is masked and error texts
are stripped of it. The lints' SQL comes from :mod:`adapto_ops.dbaudit`.
"""

from __future__ import annotations

import json

from adapto_ops.commands import dbscript
from adapto_ops.dbaudit import queries
from adapto_ops.layout import ReleaseLayout

CHECK_SCRIPT = r'''
import json, os, re, sys, time
CONFIG = json.loads(__CONFIG__)
out = {"connected": False}
SECRET = []
__HELPERS__
if CONFIG.get("env_file"):
    values, why = read_env(CONFIG["env_file"])
    if values is None:
        out["error"] = f"{CONFIG['env_file']}: {why}"
        finish()
    url = values.get("DATABASE_URL", "")
else:
    url = os.environ.get(CONFIG["url_env"], "")
psycopg, params = connection_params(url, "the database URL")
out["dsn"] = " ".join(f"{k}={'****' if k == 'password' else v}" for k, v in params.items())
started = time.perf_counter()
try:
    conn = psycopg.connect(url, connect_timeout=CONFIG["timeout_s"], autocommit=True,
                           application_name="adapto-db-check")
except psycopg.Error as exc:
    lines = str(exc).strip().splitlines()
    reason = re.split(r"(?:FATAL|ERROR):\s*", clean(lines[-1] if lines else exc))[-1]
    out["error"] = "cannot connect: " + reason
    finish()
out["connected"] = True
results = {}
try:
    # Read only, and schemas spelled out in every deparsed policy expression.
    conn.execute("begin read only")
    conn.execute("set local search_path = ''")
    conn.execute(f"set local statement_timeout = {int(CONFIG['timeout_s'] * 1000)}")
    out["role"], out["database"] = conn.execute(
        "select session_user, current_database()").fetchone()
    for name, sql in CONFIG["queries"].items():
        results[name] = [[str(v) if v is not None else "" for v in row]
                         for row in conn.execute(sql).fetchall()]
    conn.execute("rollback")
except psycopg.Error as exc:
    out["error"] = "a lint query failed: " + clean(exc)
finally:
    conn.close()
out["results"] = results
out["elapsed_ms"] = round((time.perf_counter() - started) * 1000, 1)
finish()
'''

URL_ENV = "ADAPTO_DB_CHECK_URL"
TIMEOUT_S = 20.0


def script(*, env_file: str | None, timeout_s: float = TIMEOUT_S) -> str:
    """The script with its configuration: the .env to read, or the variable holding the URL."""
    config = {"env_file": env_file, "url_env": URL_ENV, "timeout_s": timeout_s,
              "queries": queries()}
    return (CHECK_SCRIPT.replace("__HELPERS__", dbscript.SCRIPT_HELPERS)
            .replace("__CONFIG__", repr(json.dumps(config))))


def on_host(layout: ReleaseLayout) -> tuple[str, bytes]:
    """(command, stdin) for the host: the release venv's python runs the script from stdin.

    Without that python (no release yet, a node backend) it prints one JSON line
    saying so, as `recover database` does.
    """
    return (dbscript.stdin_command("check", layout),
            script(env_file=layout.env_file).encode())
