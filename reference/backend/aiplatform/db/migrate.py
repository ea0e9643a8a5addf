"""Versioned SQL migrations: files ``NNNN_name.sql`` in migrations/, applied in order.

Each file runs in its own transaction as the migration OWNER role, and is
recorded with its checksum in ``schema_migrations`` in that same transaction:
a file either applied completely and is recorded, or left no trace.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from pathlib import Path

import psycopg

FILE_NAME = re.compile(r"^(\d{4})_([a-z0-9_]+)\.sql$")
# Any constant works; it only has to be the same in every release, so two
# deploys (or a deploy and an operator) never migrate at the same time.
LOCK_KEY = 0x61695F6D69677261  # "ai_migra"

BOOTSTRAP = """
create table if not exists public.schema_migrations (
  version    text primary key,
  name       text not null,
  checksum   text not null,
  applied_at timestamptz not null default now()
)
"""


class MigrationError(Exception):
    """A migration could not run; the message is one line naming the file."""


@dataclass(frozen=True)
class Migration:
    """One migration file."""

    version: str
    name: str
    path: Path

    @property
    def sql(self) -> str:
        """The file's SQL text."""
        return self.path.read_text(encoding="utf-8")

    @property
    def checksum(self) -> str:
        """sha256 of the file, to notice a file edited after it was applied."""
        return hashlib.sha256(self.path.read_bytes()).hexdigest()


def discover(folder: Path) -> list[Migration]:
    """The migration files in ``folder``, in version order; a misnamed .sql file is an error."""
    found: dict[str, Migration] = {}
    for path in sorted(folder.glob("*.sql")):
        match = FILE_NAME.match(path.name)
        if not match:
            raise MigrationError(f"{path.name}: migration files are named NNNN_lowercase_name.sql")
        version = match.group(1)
        if version in found:
            other = found[version].path.name
            raise MigrationError(f"{path.name}: version {version} is also {other}")
        found[version] = Migration(version, match.group(2), path)
    return [found[v] for v in sorted(found)]


def applied_versions(conn: psycopg.Connection) -> dict[str, str]:
    """version -> checksum of what the database has applied (empty before the first run)."""
    exists = conn.execute("select to_regclass('public.schema_migrations') is not null").fetchone()
    if not exists or not exists[0]:
        return {}
    rows = conn.execute("select version, checksum from public.schema_migrations").fetchall()
    return {version: checksum for version, checksum in rows}


def pending(conn: psycopg.Connection, migrations: list[Migration]) -> list[Migration]:
    """The migrations not applied yet; an applied file whose text changed is an error."""
    done = applied_versions(conn)
    for migration in migrations:
        recorded = done.get(migration.version)
        if recorded is not None and recorded != migration.checksum:
            raise MigrationError(
                f"{migration.path.name} changed after it was applied: "
                "write a new migration instead of editing an applied one"
            )
    return [m for m in migrations if m.version not in done]


def apply(conn: psycopg.Connection, migrations: list[Migration]) -> list[Migration]:
    """Apply the pending migrations, each in its own transaction; returns those applied.

    ``conn`` must be in autocommit mode. Holds a session advisory lock for the
    whole run. The first failure rolls its file back and raises MigrationError.
    """
    conn.execute("select pg_advisory_lock(%s)", (LOCK_KEY,))
    try:
        conn.execute(BOOTSTRAP)
        todo = pending(conn, migrations)
        for migration in todo:
            try:
                with conn.transaction():
                    conn.execute(migration.sql.encode())
                    conn.execute(
                        "insert into public.schema_migrations (version, name, checksum)"
                        " values (%s, %s, %s)",
                        (migration.version, migration.name, migration.checksum),
                    )
            except psycopg.Error as error:
                reason = " ".join(str(error).split()) or type(error).__name__
                raise MigrationError(
                    f"{migration.path.name} failed and was rolled back: {reason}"
                ) from None
        return todo
    finally:
        conn.execute("select pg_advisory_unlock(%s)", (LOCK_KEY,))
