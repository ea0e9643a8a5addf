"""``python -m aiplatform.migrate [--status]``: apply or list the pending migrations.

Connects with MIGRATION_DATABASE_URL (the owner role). DATABASE_URL (the
application's login role, which owns nothing) is used only when
MIGRATE_WITH_DATABASE_URL=1 says so, e.g. where one role does everything.
Exit codes: 0 done (or --status), 1 a migration failed, 2 bad configuration.
Every error is one line on stderr, without the DSN.
"""

from __future__ import annotations

import argparse
import os
import sys

import psycopg

from aiplatform.config import MIGRATIONS_DIR
from aiplatform.db.migrate import MigrationError, apply, discover, pending


def _database_url() -> str:
    url = os.environ.get("MIGRATION_DATABASE_URL")
    if url:
        return url
    if os.environ.get("MIGRATE_WITH_DATABASE_URL") == "1" and os.environ.get("DATABASE_URL"):
        return os.environ["DATABASE_URL"]
    raise SystemExit(
        "migrate: MIGRATION_DATABASE_URL is not set "
        "(set MIGRATE_WITH_DATABASE_URL=1 to use DATABASE_URL instead)"
    )


def main(argv: list[str] | None = None) -> int:
    """Run the command; returns the exit code."""
    parser = argparse.ArgumentParser(prog="python -m aiplatform.migrate", description=__doc__)
    parser.add_argument("--status", action="store_true", help="list pending migrations only")
    args = parser.parse_args(argv)
    try:
        url = _database_url()
    except SystemExit as error:
        print(error, file=sys.stderr)
        return 2
    try:
        migrations = discover(MIGRATIONS_DIR)
        with psycopg.connect(url, autocommit=True, connect_timeout=10) as conn:
            if args.status:
                todo = pending(conn, migrations)
                for migration in todo:
                    print(f"pending {migration.path.name}")
                print(f"{len(todo)} pending of {len(migrations)}")
                return 0
            done = apply(conn, migrations)
    except MigrationError as error:
        print(f"migrate: {error}", file=sys.stderr)
        return 1
    except psycopg.OperationalError as error:
        # The first line only: libpq's message may continue with connection details.
        reason = str(error).strip().splitlines()[0] if str(error).strip() else "cannot connect"
        print(f"migrate: cannot connect to the database: {reason}", file=sys.stderr)
        return 1
    for migration in done:
        print(f"applied {migration.path.name}")
    print(f"{len(done)} applied, {len(migrations)} in total")
    return 0


if __name__ == "__main__":
    sys.exit(main())
