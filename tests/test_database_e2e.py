"""`adapto recover database` and health's database checks against the sandbox's real PostgreSQL.

One sandbox for the module on its own loopback slot (127.0.0.111), with the
PostgreSQL cluster `sandbox up` starts for it. Faults are real: a session
idle in a transaction holding a row lock another session waits for, every
connection slot taken by open connections, the cluster stopped with pg_ctl
(as the postgres user). The stopped cluster is last, and brought back.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest

from adapto_ops.inventory.secrets import parse_dotenv
from adapto_ops.sandbox.pg_cluster import Cluster, server_bin_dir
from tests.e2e_support import Cli, events, said, sandbox_marks
from tests.operate_sandbox import ENV, OpBox, Slot, deployed_sandbox

pytestmark = [pytest.mark.e2e, *sandbox_marks()]

SLOT = Slot("127.0.0.111", 2411, 8411, 8511, (3411, 3412))
RECOVER_NEXT = f"adapto recover database -e {ENV}"


@pytest.fixture(scope="module")
def box(tmp_path_factory: pytest.TempPathFactory) -> Iterator[OpBox]:
    with deployed_sandbox(tmp_path_factory.mktemp("database"), SLOT) as sandbox:
        yield sandbox


def secrets(box: OpBox) -> dict[str, str]:
    return parse_dotenv((box.base / ".adapto" / "secrets.env").read_text(encoding="utf-8"))


def app_url(box: OpBox) -> str:
    return secrets(box)["DATABASE_URL"]


def cluster(box: OpBox) -> Cluster:
    """The sandbox's cluster, where its inventory says `sandbox up` put it."""
    sandbox = box.data["environments"][ENV]["sandbox"]
    port = sandbox.get("postgres_port") or 5432
    return Cluster(Path(sandbox["postgres_dir"]), server_bin_dir(), int(port), SLOT.address)


def recover_db(box: OpBox, *extra: str) -> Cli:
    return box.cli("recover", "database", *extra, timeout=120)


def health(box: OpBox) -> dict[str, Any]:
    result = box.cli("health", "--json", timeout=120)
    assert result.returncode in (0, 1), said(result)
    return json.loads(result.stdout)


def assert_no_password(box: OpBox, result: Cli) -> None:
    for name in ("DATABASE_URL", "MIGRATION_DATABASE_URL"):
        password = psycopg.conninfo.conninfo_to_dict(secrets(box)[name]).get("password")
        assert password and password not in result.stdout + result.stderr


def test_a_pending_migration_is_applied_only_with_yes(box: OpBox) -> None:
    """A migration the live release has and the database has not (the deploy applied the rest)."""
    migration = box.root / "current" / "backend" / "migrations" / "0099_adapto_e2e.sql"
    migration.write_text("create table adapto_e2e_marker (id int);\n")
    box.cleanups.append(lambda: migration.unlink(missing_ok=True))
    first = recover_db(box, "--json")
    assert_no_password(box, first)
    assert first.returncode == 1, said(first)
    assert "database migrations: 1 pending" in first.stderr, said(first)
    assert "--yes` or `adapto db migrate -e op` applies them" in first.stderr, said(first)
    fixed = recover_db(box, "--yes", "--json")
    assert_no_password(box, fixed)
    assert fixed.returncode == 0, said(fixed)
    host = events(fixed)[-1]["data"]["hosts"][0]
    assert host["actions"] == ["apply 1 pending migration(s)"], host
    assert "migrations: none pending" in host["now"], host
    again = recover_db(box)
    assert again.returncode == 0, said(again)
    for line in ("connection: ", "connections: ", "sessions: none idle",
                 "migrations: none pending", "size: "):
        assert line in again.stdout, said(again)
    assert "password=****" in again.stdout and "TCP" in again.stdout
    checks = health(box)["checks"]
    direct, backend = checks["database:connect"][0], checks["database:backendView"][0]
    assert direct["status"] == "pass" and direct["observedValue"] > 0, direct
    assert backend["status"] == "pass" and "no migration pending" in backend["output"], backend


def test_a_blocking_idle_transaction_is_listed_then_terminated_only_with_yes(box: OpBox) -> None:
    url = app_url(box)
    holder = psycopg.connect(url)  # not autocommit: the select opens a transaction
    holder.execute("select pg_advisory_xact_lock(4243), 'a secret literal'")
    holder_pid = holder.info.backend_pid
    waiter = psycopg.connect(url, autocommit=True)
    done = threading.Event()

    def wait_for_lock() -> None:
        waiter.execute("select pg_advisory_xact_lock(4243)")
        done.set()

    thread = threading.Thread(target=wait_for_lock, daemon=True)
    thread.start()
    time.sleep(0.5)
    try:
        listed = recover_db(box)
        assert listed.returncode == 1, said(listed)
        assert f"pid {holder_pid}" in listed.stdout and "idle in transaction" in listed.stdout
        assert f"blocking {waiter.info.backend_pid}" in listed.stdout, said(listed)
        assert "a secret literal" not in listed.stdout and "'…'" in listed.stdout
        assert "terminates them" in listed.stderr, said(listed)
        assert not done.is_set()
        holder.execute("select 1")  # still alive: nothing was terminated without --yes

        dry = recover_db(box, "--yes", "--dry-run")
        assert dry.returncode == 0 and "terminate sessions" not in dry.stderr, said(dry)
        holder.execute("select 1")

        fixed = recover_db(box, "--yes")
        assert fixed.returncode == 0, said(fixed)
        assert f"terminate session(s) {holder_pid}" in fixed.stdout, said(fixed)
        assert done.wait(10), "the waiting session never got its lock"
        with pytest.raises(psycopg.OperationalError):
            holder.execute("select 1")
    finally:
        holder.close()
        waiter.close()


def test_an_exhausted_connection_limit_is_named(box: OpBox) -> None:
    url = app_url(box)
    held: list[psycopg.Connection[Any]] = []
    try:
        while len(held) < 500:
            try:
                held.append(psycopg.connect(url, connect_timeout=5))
            except psycopg.OperationalError as exc:
                assert "connection slots are reserved" in str(exc) or "too many" in str(exc)
                break
        result = recover_db(box)
        assert result.returncode == 1, said(result)
        assert "too many clients: max_connections exhausted" in result.stderr, said(result)
        direct = health(box)["checks"]["database:connect"][0]
        assert direct["status"] == "fail" and direct["kind"] == "database", direct
        assert "too many clients" in direct["output"] and direct["next"] == RECOVER_NEXT
    finally:
        for conn in held:
            conn.close()
    assert recover_db(box).returncode == 0


def test_a_stopped_cluster_is_named_and_classified_as_database(box: OpBox) -> None:
    pg = cluster(box)
    pg.stop()
    try:
        result = recover_db(box, "--json")
        assert result.returncode == 1, said(result)
        assert "TCP: " in result.stderr and "connection refused (is PostgreSQL running?)" \
            in result.stderr, said(result)
        checks = health(box)["checks"]
        for key in ("database:connect", "database:backendView"):
            entry = checks[key][0]
            assert entry["status"] == "fail" and entry["kind"] == "database", entry
            assert entry["next"] == RECOVER_NEXT
        assert "connection refused" in checks["database:connect"][0]["output"]
        # The backend's own 503 is a database failure too, not "authentication" or "500".
        for key in ("api:responseTime", f"instance-{SLOT.ports[0]}:responseTime"):
            assert checks[key][0]["kind"] == "database", checks[key]
    finally:
        pg.start()  # as `sandbox up` starts it: its address, port and socket folder
    assert recover_db(box).returncode == 0
