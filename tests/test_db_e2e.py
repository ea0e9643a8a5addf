"""The sandbox's PostgreSQL and the migrations in the deploy, end to end (issue 8, items 2-3).

One sandbox on this module's slot (127.0.0.101: sshd, nginx, PM2 and the
environment's PostgreSQL cluster made by `sandbox up`) with the reference
backend deployed. The tests run in file order and share it: the cluster and
its roles, the first deploy's migrations, a new migration applied by the next
deploy, a failing migration that leaves the site on its old release, `db
status` / `db migrate` on their own, and last `sandbox down` / `--purge`.
"""

from __future__ import annotations

import json
import os
import stat
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest

from tests.e2e_support import REPO, Cli, adapto, postgres_dir, said, sandbox_marks
from tests.operate_sandbox import ENV, OpBox, Slot, deployed_sandbox

pytestmark = [pytest.mark.e2e, *sandbox_marks()]

SLOT = Slot("127.0.0.101", 2401, 8401, 8501, (3401, 3402))
PG_PORT = 5432


@pytest.fixture(scope="module")
def box(tmp_path_factory: pytest.TempPathFactory) -> Iterator[OpBox]:
    with deployed_sandbox(tmp_path_factory.mktemp("db"), SLOT) as deployed:
        yield deployed


def cluster(box: OpBox) -> Path:
    return Path(postgres_dir(SLOT.address, box.base))


def secrets(box: OpBox) -> dict[str, str]:
    from adapto_ops.inventory.secrets import parse_dotenv

    return parse_dotenv((box.base / ".adapto" / "secrets.env").read_text())


def no_secret_in(box: OpBox, result: Cli) -> None:
    shown = result.stdout + result.stderr
    for name, value in secrets(box).items():
        assert value not in shown, f"{name}'s value was printed"


def health(box: OpBox) -> dict[str, Any]:
    response = box.get()
    assert response.status_code == 200, response.text[:300]
    return dict(response.json())


def current(box: OpBox) -> str:
    return Path((box.root / "current").readlink()).name


def history(box: OpBox) -> list[dict[str, Any]]:
    path = box.root / ".adapto" / "history.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def owner_query(box: OpBox, sql: str) -> list[tuple[Any, ...]]:
    with psycopg.connect(secrets(box)["MIGRATION_DATABASE_URL"], autocommit=True,
                         connect_timeout=5) as conn:
        return conn.execute(sql).fetchall()


# The reference backend's own migrations; the tests add theirs after them (09xx).
BUNDLED = len(list((REPO / "reference" / "backend" / "migrations").glob("*.sql")))


def write_migration(box: OpBox, name: str, sql: str) -> Path:
    path = box.base / "backend" / "migrations" / name
    path.write_text(sql)
    return path


def db_status(box: OpBox, inventory: Path | None = None) -> dict[str, Any]:
    result = adapto("db", "status", "-e", ENV, "-i", str(inventory or box.inventory), "--json")
    assert result.returncode == 0, said(result)
    no_secret_in(box, result)
    return dict(json.loads(result.stdout))


# --- the cluster `sandbox up` made ----------------------------------------------------


def test_up_made_a_loopback_cluster_with_an_owner_and_an_app_role(box: OpBox) -> None:
    path = box.base / ".adapto" / "secrets.env"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    values = secrets(box)
    app, owner = values["DATABASE_URL"], values["MIGRATION_DATABASE_URL"]
    assert app.startswith("postgresql://ai_platform_app:") and \
        app.endswith(f"@{SLOT.address}:{PG_PORT}/ai_platform")
    assert owner.startswith("postgresql://ai_platform_owner:")
    # The data folder belongs to the postgres user, as initdb requires.
    assert (cluster(box) / "data").stat().st_uid != 0
    with psycopg.connect(app, autocommit=True, connect_timeout=5) as conn:
        assert conn.execute("SHOW listen_addresses").fetchone() == (SLOT.address,)
        row = conn.execute("SELECT rolsuper, rolbypassrls, rolinherit FROM pg_roles "
                           "WHERE rolname = current_user").fetchone()
        assert row == (False, False, False)
        # No table privilege of its own ...
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            conn.execute("SELECT count(*) FROM public.users")
    # ... and as `authenticated` without a user's claims RLS shows nothing, while the
    # owner sees the user the signup below made.
    made = httpx.post(box.url("/api/auth/signup"), headers={"Host": "op.adapto.test"},
                      json={"email": "db-e2e@example.test", "password": "long enough pw"},
                      verify=False, timeout=20, trust_env=False)
    assert made.status_code == 201, made.text[:300]
    assert owner_query(box, "SELECT count(*) FROM public.users")[0][0] >= 1
    with psycopg.connect(app, autocommit=True, connect_timeout=5) as conn, conn.transaction():
        conn.execute("SET LOCAL ROLE authenticated")
        assert conn.execute("SELECT count(*) FROM public.users").fetchone() == (0,)


def test_up_twice_confirms_and_keeps_the_passwords(box: OpBox) -> None:
    before = secrets(box)
    again = box.cli("sandbox", "up", timeout=120)
    assert again.returncode == 0, said(again)
    assert "already running" in again.stdout
    assert secrets(box) == before
    no_secret_in(box, again)
    shown = box.cli("sandbox", "status")
    assert shown.returncode == 0, said(shown)
    assert f"up {SLOT.address}:{PG_PORT}" in shown.stdout


# --- migrations in the deploy ---------------------------------------------------------


def test_the_first_deploy_migrated_and_health_says_database_ok(box: OpBox) -> None:
    body = health(box)
    assert body["database"]["status"] == "ok"
    assert body["migrations"]["pending"] == 0
    status = db_status(box)
    assert status["pending"] == [] and status["total"] == BUNDLED
    assert status["release"] == current(box)


def test_a_message_posted_through_one_instance_reaches_a_websocket_on_the_other(
        box: OpBox) -> None:
    """Two instances behind nginx: LISTEN/NOTIFY carries a message across them."""
    import socket
    import ssl

    from websockets.sync.client import connect

    from tests.operate_sandbox import SERVER_NAME

    api = httpx.Client(base_url=box.url(""), headers={"Host": SERVER_NAME}, verify=False,
                       timeout=15, trust_env=False)
    session = api.post("/api/auth/signup", json={"email": "ws@adapto.test",
                                                 "password": "correct horse battery"})
    assert session.status_code == 201, session.text[:300]
    bearer = {"Authorization": f"Bearer {session.json()['access_token']}"}
    project = api.get("/api/projects", headers=bearer).json()["items"][0]["id"]
    dialog = api.post("/api/dialogs", headers=bearer,
                      json={"project_id": project, "title": "across instances"})
    assert dialog.status_code == 201, dialog.text[:300]
    dialog_id = dialog.json()["id"]

    # The WebSocket goes through nginx over TLS; hello names the instance it reached.
    raw = socket.create_connection((SLOT.address, SLOT.https_port), timeout=10)
    tls = ssl.create_default_context()
    tls.check_hostname, tls.verify_mode = False, ssl.CERT_NONE
    with connect(f"wss://{SERVER_NAME}:{SLOT.https_port}/ws", sock=raw, ssl=tls,
                 server_hostname=SERVER_NAME, open_timeout=10) as ws:
        hello = json.loads(ws.recv(timeout=10))
        assert hello["type"] == "hello", hello
        reached = int(str(hello["instance"]).rsplit("-", 1)[1])
        other = next(p for p in SLOT.ports if p != reached)
        ws.send(json.dumps({"type": "auth", "token": session.json()["access_token"]}))
        assert json.loads(ws.recv(timeout=10))["type"] == "auth_ok"
        # Posted straight to the OTHER instance's own port, not through nginx.
        posted = httpx.post(f"http://{SLOT.address}:{other}/api/chat/{dialog_id}/messages",
                            headers=bearer, json={"content": "hello from the other side"},
                            timeout=15, trust_env=False)
        assert posted.status_code == 201, posted.text[:300]
        while True:
            pushed = json.loads(ws.recv(timeout=10))
            if pushed.get("type") == "message":
                break
        assert pushed["message"]["content"] == "hello from the other side"
        assert pushed["message"]["dialog_id"] == dialog_id


def test_a_new_migration_is_applied_by_the_next_deploy(box: OpBox) -> None:
    write_migration(box, "0904_deploy_notes.sql", (
        "CREATE TABLE public.deploy_notes (id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,"
        " owner_id uuid NOT NULL DEFAULT auth.uid(), note text NOT NULL);\n"
        "ALTER TABLE public.deploy_notes ENABLE ROW LEVEL SECURITY;\n"
        "CREATE POLICY deploy_notes_own ON public.deploy_notes FOR ALL TO authenticated\n"
        "  USING (owner_id = (SELECT auth.uid())) WITH CHECK (owner_id = (SELECT auth.uid()));\n"
        "GRANT SELECT, INSERT ON public.deploy_notes TO authenticated;\n"))
    dry = box.deploy("--dry-run")
    assert dry.returncode == 0, said(dry)
    assert "aiplatform.migrate" in dry.stdout
    assert owner_query(box, "SELECT to_regclass('public.deploy_notes')::text") == [(None,)]
    before = current(box)
    result = box.deploy()
    assert result.returncode == 0, said(result)
    no_secret_in(box, result)
    assert f"1 applied, {BUNDLED + 1} in total" in result.stdout
    assert current(box) != before
    assert owner_query(box, "SELECT to_regclass('public.deploy_notes')::text") == \
        [("deploy_notes",)]
    body = health(box)
    assert body["migrations"]["pending"] == 0 and body["release"] == current(box)


def test_a_failing_migration_leaves_every_host_on_its_old_release(box: OpBox) -> None:
    broken = write_migration(box, "0905_broken.sql",
                             "ALTER TABLE public.no_such_table ADD COLUMN x int;\n")
    before, releases = current(box), sorted(os.listdir(box.root / "releases"))
    try:
        result = box.deploy()
    finally:
        broken.unlink()
    assert result.returncode == 1, said(result)
    errors = [ln for ln in result.stderr.splitlines() if ln.startswith("error:")]
    assert len(errors) == 1, said(result)
    assert "0905_broken.sql" in errors[0] and "no_such_table" in errors[0]
    assert current(box) == before
    assert sorted(os.listdir(box.root / "releases")) == releases  # the new one was dropped
    assert not list((box.root / "shared").glob(".env.next-*"))
    assert health(box)["release"] == before
    last = history(box)[-1]
    assert last["result"] == "failed" and last["step"] == "migrate"
    assert "0905_broken.sql" in last["error"]
    # Rolled back entirely: nothing of it reached the database.
    assert owner_query(box, "SELECT count(*) FROM schema_migrations "
                            "WHERE version LIKE '0905%'") == [(0,)]


def test_db_status_lists_a_pending_migration_and_db_migrate_applies_it(box: OpBox) -> None:
    # A release that ships a migration without running it: the inventory has no migrate.
    write_migration(box, "0906_note_tags.sql",
                    "ALTER TABLE public.deploy_notes ADD COLUMN tags text[] DEFAULT '{}';\n")
    unmanaged = box.write_variant("no-migrate", lambda env: env["backend"].pop("migrate"))
    shipped = adapto("deploy", "all", "-e", ENV, "-i", str(unmanaged), "--yes", "--skip-build")
    assert shipped.returncode == 0, said(shipped)
    assert health(box)["migrations"]["pending"] == 1
    status = db_status(box)
    assert status["pending"] == ["0906_note_tags.sql"] and status["total"] == BUNDLED + 2
    table = adapto("db", "status", "-e", ENV, "-i", str(box.inventory))
    assert table.returncode == 0 and "pending  0906_note_tags.sql" in table.stdout, said(table)
    refused = adapto("db", "status", "-e", ENV, "-i", str(unmanaged))
    assert refused.returncode == 2 and "backend.migrate" in refused.stderr, said(refused)
    applied = adapto("db", "migrate", "-e", ENV, "-i", str(box.inventory))
    assert applied.returncode == 0, said(applied)
    no_secret_in(box, applied)
    assert db_status(box)["pending"] == []
    assert health(box)["migrations"]["pending"] == 0
    assert not (box.root / ".adapto" / "lock").exists()


# --- down and purge (last) ------------------------------------------------------------


def postmaster_pid(box: OpBox) -> int | None:
    try:
        pid = int((cluster(box) / "data" / "postmaster.pid").read_text().split()[0])
        os.kill(pid, 0)
        return pid
    except (OSError, ValueError, IndexError):
        return None


def test_down_stops_the_cluster_and_purge_removes_it(box: OpBox) -> None:
    assert postmaster_pid(box) is not None
    down = box.cli("sandbox", "down", timeout=120)
    assert down.returncode == 0, said(down)
    assert "postgres" in down.stdout
    assert postmaster_pid(box) is None
    with pytest.raises(psycopg.OperationalError):
        psycopg.connect(secrets(box)["DATABASE_URL"], connect_timeout=2)
    assert (cluster(box) / "data" / "PG_VERSION").is_file()  # kept without --purge
    status = box.cli("sandbox", "status")
    assert status.returncode == 1 and f"DOWN {SLOT.address}:{PG_PORT}" in status.stdout
    # Back up with the data kept: the migrations are still applied.
    up = box.cli("sandbox", "up", timeout=120)
    assert up.returncode == 0 and "started postgres" in up.stdout, said(up)
    assert owner_query(box, "SELECT count(*) FROM schema_migrations")[0][0] == BUNDLED + 2
    purged = box.cli("sandbox", "down", "--purge", timeout=120)
    assert purged.returncode == 0, said(purged)
    assert not cluster(box).exists()
