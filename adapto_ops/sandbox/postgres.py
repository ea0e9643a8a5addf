"""The sandbox's PostgreSQL: one cluster per sandbox environment, on its first host.

`adapto sandbox up` runs Debian's server binaries (adapto_ops/sandbox/pg_cluster.py,
the same code the reference backend's tests use) in the first host's
postgres folder, listening on that host's own loopback address only, and
provisions what the backend's migrations expect: the database, a migration
owner role and the application's login role (NOBYPASSRLS, owns nothing). It
writes DATABASE_URL (the login role) and MIGRATION_DATABASE_URL (the owner)
into the environment's secrets file (0600), keeping the passwords already
there, so `up` twice only confirms. One cluster per environment, like the one
database a real deployment shares between its hosts: every host's backend
gets the same DATABASE_URL and `deploy` migrates it once.
"""

from __future__ import annotations

import os
import re
import secrets
import shutil
import signal
import stat
import time
from pathlib import Path
from urllib.parse import unquote, urlsplit

from adapto_ops.errors import InventoryError, OperationFailed
from adapto_ops.inventory.secrets import parse_dotenv
from adapto_ops.sandbox.hosts import MARKER, PROTECTED, SandboxHost
from adapto_ops.sandbox.pg_cluster import Cluster, ClusterError, provision, server_bin_dir
from adapto_ops.sandbox.procs import ToolMissing, tcp_open

# The secrets `up` writes; never given a random value like the other secrets.
DATABASE_SECRETS = ("DATABASE_URL", "MIGRATION_DATABASE_URL")
STOP_TIMEOUT_S = 30.0


def holds_database(sh: SandboxHost) -> bool:
    """True for the environment's first host when its sandbox has a PostgreSQL port."""
    assert sh.env.sandbox is not None
    return sh.env.sandbox.postgres_port is not None and sh.name == sh.env.hosts[0].name


def cluster_dir(sh: SandboxHost) -> Path:
    """``sandbox.postgres_dir``, or <sandbox dir>/postgres."""
    assert sh.env.sandbox is not None
    return Path(sh.env.sandbox.postgres_dir or sh.sdir / "postgres")


def names(project: str) -> tuple[str, str, str]:
    """(database, owner role, login role) derived from the project's name."""
    base = re.sub(r"[^a-z0-9_]", "_", project.lower())
    return base, f"{base}_owner", f"{base}_app"


def cluster(sh: SandboxHost, *, binaries: bool = True) -> Cluster:
    """The host's cluster; ``binaries=False`` when only its pid and port are needed."""
    assert sh.env.sandbox is not None and sh.env.sandbox.postgres_port is not None
    if binaries:
        try:
            bin_dir = server_bin_dir()
        except ClusterError as exc:
            raise ToolMissing(f"PostgreSQL server not found: {exc}") from None
    else:
        bin_dir = Path()
    return Cluster(cluster_dir(sh), bin_dir, sh.env.sandbox.postgres_port, sh.host.address)


def running(sh: SandboxHost) -> bool:
    """The cluster's postmaster runs and accepts TCP on its loopback address."""
    pg = cluster(sh, binaries=False)
    return pg.pid() is not None and tcp_open(pg.host, pg.port, 0.5)


def _check_reachable(sh: SandboxHost, folder: Path) -> None:
    """initdb and postgres run as the postgres user, who must pass through every parent."""
    for parent in folder.parents:
        try:
            mode = parent.stat().st_mode
        except FileNotFoundError:
            continue  # made by mkdir below, 0755 under the usual umask
        if not mode & stat.S_IXOTH:
            raise InventoryError(
                f"host {sh.name}: the postgres user cannot reach {folder}: {parent} is mode "
                f"{stat.S_IMODE(mode):o}; set sandbox.postgres_dir to a folder it can reach "
                f"(e.g. under /var/tmp)")


def _last_log_error(pg: Cluster) -> str:
    try:
        lines = pg.log_file.read_text(errors="replace").splitlines()
    except OSError:
        return ""
    found = [ln for ln in lines if "FATAL" in ln or "ERROR" in ln or "could not" in ln]
    return (found or lines or [""])[-1].strip()


def _start(sh: SandboxHost, pg: Cluster) -> bool:
    """initdb when the folder is new, then start; False when it was already running."""
    if pg.pid() is not None:
        return False
    folder = cluster_dir(sh)
    _check_reachable(sh, folder)
    folder.mkdir(parents=True, exist_ok=True)
    folder.chmod(0o755)
    if not (folder / MARKER).exists():
        (folder / MARKER).write_text(f"made by `adapto sandbox up` for {sh.env_name}/{sh.name}\n")
    try:
        if not pg.initialized:
            # A data folder without PG_VERSION is an interrupted initdb: start over.
            shutil.rmtree(pg.data_dir, ignore_errors=True)
            pg.init()
        pg.start()
    except ClusterError as exc:
        logged = _last_log_error(pg)
        raise OperationFailed(
            f"{sh.name}: PostgreSQL did not start on {pg.host}:{pg.port}: "
            f"{logged or exc}; see {pg.log_file}") from None
    deadline = time.monotonic() + 10
    while not tcp_open(pg.host, pg.port, 0.2):
        if time.monotonic() > deadline:
            raise OperationFailed(f"{sh.name}: PostgreSQL does not listen on {pg.host}:{pg.port};"
                                  f" see {pg.log_file}")
        time.sleep(0.05)
    return True


def _password(url: str | None, user: str, pg: Cluster, database: str) -> str:
    """The password of ``url`` when it already names this role on this cluster, else a new one."""
    if url:
        parts = urlsplit(url)
        if (parts.scheme in ("postgresql", "postgres") and parts.hostname == pg.host
                and parts.port == pg.port and unquote(parts.username or "") == user
                and parts.path.lstrip("/") == database and parts.password):
            return unquote(parts.password)
    return secrets.token_urlsafe(24)


def set_secrets(path: Path, values: dict[str, str]) -> bool:
    """Put ``values`` into the dotenv ``path`` (0600), replacing their lines; True if changed."""
    text = path.read_text(encoding="utf-8") if path.is_file() else ""
    if all(parse_dotenv(text).get(k) == v for k, v in values.items()):
        return False
    lines = [ln for ln in text.splitlines()
             if ln.split("=", 1)[0].removeprefix("export ").strip() not in values]
    lines += [f"{k}={v}" for k, v in values.items()]
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        handle.write("\n".join(lines) + "\n")
    os.chmod(tmp, 0o600)
    os.replace(tmp, path)
    return True


def up_database(sh: SandboxHost, secrets_file: Path | None) -> bool:
    """Start and provision the cluster, write the URLs; True when the server was started."""
    if secrets_file is None:
        raise InventoryError(f"environment {sh.env_name!r}: the sandbox's PostgreSQL needs a "
                             "secrets.file to write DATABASE_URL into; add e.g. "
                             "secrets: {file: .adapto/sandbox/secrets.env}")
    pg = cluster(sh)
    started = _start(sh, pg)
    database, owner, app = names(sh.project)
    known = parse_dotenv(secrets_file.read_text(encoding="utf-8")) if secrets_file.is_file() \
        else {}
    owner_pw = _password(known.get("MIGRATION_DATABASE_URL"), owner, pg, database)
    app_pw = _password(known.get("DATABASE_URL"), app, pg, database)
    try:
        urls = provision(pg, database, owner=(owner, owner_pw), app=(app, app_pw))
    except ClusterError as exc:
        raise OperationFailed(f"{sh.name}: provisioning the database failed: {exc}") from None
    set_secrets(secrets_file, {"DATABASE_URL": urls.app, "MIGRATION_DATABASE_URL": urls.owner})
    return started


def down_database(sh: SandboxHost, purge: bool) -> tuple[bool, list[Path]]:
    """Stop the cluster (fast shutdown: SIGINT, as `pg_ctl -m fast`); ``purge`` removes it.

    Returns (stopped, removed folders). The signal goes to the postmaster named by
    postmaster.pid, so no binary and no path traversal by the postgres user is needed.
    """
    pg = cluster(sh, binaries=False)
    stopped = False
    if (pid := pg.pid()) is not None:
        os.kill(pid, signal.SIGINT)
        deadline = time.monotonic() + STOP_TIMEOUT_S
        while pg.pid() is not None and time.monotonic() < deadline:
            time.sleep(0.05)
        if pg.pid() is not None:
            os.kill(pid, signal.SIGQUIT)  # immediate shutdown; crash recovery at next start
            time.sleep(1)
        stopped = True
    removed: list[Path] = []
    folder = cluster_dir(sh)
    if purge and folder.is_dir() and folder.resolve() == folder and len(folder.parts) >= 3 \
            and str(folder) not in PROTECTED and (folder / MARKER).is_file():
        shutil.rmtree(folder)
        removed.append(folder)
    return stopped, removed


def note(sh: SandboxHost, secrets_file: Path) -> str:
    """One line for `up`: where the database is and where its URLs went (names, no values)."""
    pg, (database, _, _) = cluster(sh, binaries=False), names(sh.project)
    unlisted = [n for n in DATABASE_SECRETS if n not in sh.env.secrets.names]
    warning = (f"; not in secrets.names, so no deploy ships them: {', '.join(unlisted)}"
               if unlisted else "")
    return (f"PostgreSQL {pg.host}:{pg.port} database {database}: "
            f"{', '.join(DATABASE_SECRETS)} in {secrets_file}{warning}")


def describe(sh: SandboxHost) -> str:
    """The status table's cell: where the cluster listens, or '-' on other hosts."""
    if not holds_database(sh):
        return "-"
    pg = cluster(sh, binaries=False)
    return f"{'up' if running(sh) else 'DOWN'} {pg.host}:{pg.port}"
