"""A PostgreSQL cluster from Debian's server binaries, on loopback only.

One implementation for `adapto sandbox up` (adapto_ops/sandbox/postgres.py,
a durable cluster in the sandbox's folder) and the reference backend's tests
(reference/backend/tests/pg_cluster.py re-exports this module: a throwaway one):

    with running_cluster() as cluster:
        urls = provision(cluster, "aiplatform", owner=("ai_owner", pw1), app=("ai_app", pw2))
        # urls.owner runs migrations, urls.app is the backend's DATABASE_URL

initdb and postgres refuse to run as root, so as root every server command
runs as the ``postgres`` user (runuser), in folders that user owns. The
superuser is reached over the cluster's own unix socket (trust, local only);
psql needs no server user, so it runs as the caller. TCP on the loopback
address asks every role for its password (scram-sha-256).
"""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

SERVER_USER = "postgres"
START_TIMEOUT_S = 30


class ClusterError(RuntimeError):
    """A server command failed; the message is one line with its stderr's last line."""


def server_bin_dir() -> Path:
    """The newest Debian PostgreSQL bin directory (/usr/lib/postgresql/N/bin)."""
    def major(initdb: str) -> int:
        name = Path(initdb).parent.parent.name
        return int(name) if name.isdigit() else 0

    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), key=major)
    if not found:
        raise ClusterError("no PostgreSQL server binaries in /usr/lib/postgresql/*/bin "
                           "(apt-get install postgresql, or run scripts/setup.sh)")
    return Path(found[-1]).parent


def free_port() -> int:
    """A TCP port free on 127.0.0.1 right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _as_server_user(argv: list[str]) -> list[str]:
    return ["runuser", "-u", SERVER_USER, "--", *argv] if os.geteuid() == 0 else argv


def _run(argv: list[str], what: str, timeout: float = 60) -> None:
    result = subprocess.run(_as_server_user(argv), capture_output=True, text=True, timeout=timeout)
    if result.returncode != 0:
        lines = (result.stderr or result.stdout).strip().splitlines()
        last = lines[-1] if lines else ""
        raise ClusterError(f"{what} failed (exit {result.returncode}): {last}")


@dataclass
class Cluster:
    """One cluster: its folder (data/, socket/, log), binaries and port."""

    base: Path
    bin_dir: Path
    port: int
    host: str = "127.0.0.1"

    @property
    def data_dir(self) -> Path:
        """PGDATA."""
        return self.base / "data"

    @property
    def socket_dir(self) -> Path:
        """Where the unix socket lives (the superuser's way in)."""
        return self.base / "socket"

    @property
    def log_file(self) -> Path:
        """The server's log."""
        return self.base / "postgres.log"

    def superuser_dsn(self, database: str = "postgres") -> str:
        """A libpq DSN for the superuser over the unix socket."""
        return f"host={self.socket_dir} port={self.port} user={SERVER_USER} dbname={database}"

    def url(self, user: str, password: str, database: str) -> str:
        """A postgresql:// URL over TCP on loopback."""
        return (f"postgresql://{quote(user, safe='')}:{quote(password, safe='')}"
                f"@{self.host}:{self.port}/{quote(database, safe='')}")

    def init(self) -> None:
        """initdb into data/ (owned by the server user), loopback TCP with passwords."""
        self.base.mkdir(parents=True, exist_ok=True)
        # The server user must reach its folders through this one.
        self.base.chmod(0o755)
        for folder in (self.data_dir, self.socket_dir):
            folder.mkdir(exist_ok=True)
            if os.geteuid() == 0:
                entry = pwd.getpwnam(SERVER_USER)
                os.chown(folder, entry.pw_uid, entry.pw_gid)
        self.data_dir.chmod(0o700)
        _run([str(self.bin_dir / "initdb"), "-D", str(self.data_dir), "-U", SERVER_USER,
              "--auth-local=trust", "--auth-host=scram-sha-256", "-E", "UTF8",
              "--locale=C.UTF-8", "--no-instructions",
              # Skips the final fsync of the new folder (1.3 s of ~3 s); the running
              # server syncs as usual, only a machine crash within seconds could hurt.
              "--no-sync"], "initdb")

    def start(self, settings: dict[str, str] | None = None) -> None:
        """Start the server and wait until it accepts connections."""
        if os.geteuid() == 0:
            # The log is written by the server user.
            self.log_file.touch()
            entry = pwd.getpwnam(SERVER_USER)
            os.chown(self.log_file, entry.pw_uid, entry.pw_gid)
        options = {"listen_addresses": self.host, "port": str(self.port),
                   "unix_socket_directories": str(self.socket_dir), **(settings or {})}
        flags = " ".join(f"-c {key}={value}" for key, value in options.items())
        _run([str(self.bin_dir / "pg_ctl"), "-D", str(self.data_dir), "-l", str(self.log_file),
              "-o", flags, "-w", "-t", str(START_TIMEOUT_S), "start"], "pg_ctl start",
             timeout=START_TIMEOUT_S + 10)

    @property
    def initialized(self) -> bool:
        """initdb has run in data/."""
        return (self.data_dir / "PG_VERSION").is_file()

    def pid(self) -> int | None:
        """The postmaster's pid when it runs (postmaster.pid names a live process)."""
        try:
            pid = int((self.data_dir / "postmaster.pid").read_text().split()[0])
            os.kill(pid, 0)
        except (OSError, ValueError, IndexError):
            return None
        try:  # a zombie left for a late reaper is not a server
            state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[-1].split()[0]
        except (OSError, IndexError):
            return pid
        return None if state in ("Z", "X") else pid

    def stop(self, mode: str = "fast") -> None:
        """Stop the server (no error when it is not running)."""
        if self.pid() is None:
            return
        _run([str(self.bin_dir / "pg_ctl"), "-D", str(self.data_dir), "-m", mode, "-w", "stop"],
             "pg_ctl stop")

    def psql(self, sql: str, database: str = "postgres") -> str:
        """Run ``sql`` as the superuser; returns psql's unaligned output."""
        argv = [str(self.bin_dir / "psql"), "-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1",
                "-d", self.superuser_dsn(database), "-c", sql]
        result = subprocess.run(argv, capture_output=True, text=True, timeout=60)
        if result.returncode != 0:
            lines = result.stderr.strip().splitlines()
            raise ClusterError(f"psql failed: {lines[-1] if lines else result.returncode}")
        return result.stdout


@dataclass(frozen=True)
class DatabaseUrls:
    """The URLs a provisioned database is reached with."""

    owner: str  # MIGRATION_DATABASE_URL: owns the schema, runs migrations
    app: str  # DATABASE_URL: the backend's login role, owns nothing, cannot bypass RLS


def _literal(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


def _ident(value: str) -> str:
    return '"' + value.replace('"', '""') + '"'


def provision(cluster: Cluster, database: str, owner: tuple[str, str],
              app: tuple[str, str]) -> DatabaseUrls:
    """Create the roles and the database the backend expects; idempotent.

    anon, authenticated, service_role (NOLOGIN; service_role BYPASSRLS, which
    only a superuser may create); the owner (LOGIN, owns the database and so
    its public schema); the app's login role (NOINHERIT, NOBYPASSRLS, member
    of the three so it can SET ROLE to them, owning nothing).
    """
    (owner_name, owner_password), (app_name, app_password) = owner, app
    cluster.psql(f"""
DO $$
BEGIN
  IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'anon') THEN
    CREATE ROLE anon NOLOGIN NOINHERIT; END IF;
  IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'authenticated') THEN
    CREATE ROLE authenticated NOLOGIN NOINHERIT; END IF;
  IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'service_role') THEN
    CREATE ROLE service_role NOLOGIN NOINHERIT BYPASSRLS; END IF;
  IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = {_literal(owner_name)}) THEN
    CREATE ROLE {_ident(owner_name)} LOGIN; END IF;
  IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = {_literal(app_name)}) THEN
    CREATE ROLE {_ident(app_name)} LOGIN NOINHERIT NOBYPASSRLS; END IF;
END $$;
ALTER ROLE {_ident(owner_name)} PASSWORD {_literal(owner_password)};
ALTER ROLE {_ident(app_name)} PASSWORD {_literal(app_password)};
GRANT anon, authenticated, service_role TO {_ident(app_name)};
""")
    exists = cluster.psql(f"SELECT 1 FROM pg_database WHERE datname = {_literal(database)}")
    if not exists.strip():
        cluster.psql(f"CREATE DATABASE {_ident(database)} OWNER {_ident(owner_name)}")
    cluster.psql(f"REVOKE ALL ON DATABASE {_ident(database)} FROM PUBLIC; "
                 f"GRANT CONNECT ON DATABASE {_ident(database)} TO {_ident(app_name)}")
    return DatabaseUrls(owner=cluster.url(owner_name, owner_password, database),
                        app=cluster.url(app_name, app_password, database))


# Durability is pointless for a test cluster that is thrown away.
FAST_SETTINGS = {"fsync": "off", "synchronous_commit": "off", "full_page_writes": "off"}


@contextmanager
def running_cluster(base: Path | None = None, settings: dict[str, str] | None = None,
                    keep: bool = False) -> Iterator[Cluster]:
    """A fresh cluster in ``base`` (a new folder under /tmp by default), stopped at the end.

    The folder is removed at the end unless ``keep``. ``settings`` are passed as
    ``-c name=value`` (default: FAST_SETTINGS, no durability).
    """
    owned = base is None
    folder = Path(tempfile.mkdtemp(prefix="pgcluster-")) if base is None else base
    cluster = Cluster(folder, server_bin_dir(), free_port())
    try:
        cluster.init()
        cluster.start(FAST_SETTINGS if settings is None else settings)
        _wait_tcp(cluster)
        yield cluster
    finally:
        try:
            cluster.stop()
        finally:
            if owned and not keep:
                shutil.rmtree(folder, ignore_errors=True)


def _wait_tcp(cluster: Cluster) -> None:
    deadline = time.monotonic() + START_TIMEOUT_S
    while True:
        try:
            with socket.create_connection((cluster.host, cluster.port), timeout=1):
                return
        except OSError:
            if time.monotonic() > deadline:
                where = f"{cluster.host}:{cluster.port}"
                raise ClusterError(f"PostgreSQL did not listen on {where}") from None
            time.sleep(0.05)
