"""The on-host database script itself, run by python against a real PostgreSQL cluster.

No sandbox: the script reads a shared .env under a temporary root, exactly as
on a host, and is fed on stdin as `recover database` feeds it. One cluster for
the module (adapto_ops.sandbox.pg_cluster, Debian's binaries as the postgres user).
Each fault is real: a wrong password, a missing database, TLS required from a
server without it, a name that does not resolve, an idle transaction, every
connection slot taken, the server stopped.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest

from adapto_ops.commands import dbscript
from adapto_ops.dbdiag import Diagnosis, connection_finding, findings, parse_diagnosis
from adapto_ops.layout import ReleaseLayout
from adapto_ops.sandbox.pg_cluster import (
    Cluster,
    DatabaseUrls,
    provision,
    running_cluster,
)
from tests.e2e_support import pg_cluster_marks

pytestmark = pg_cluster_marks()

APP_PASSWORD = "app-pw-Zq81"
MAX_CONNECTIONS = 12


@pytest.fixture(scope="module")
def pg() -> Iterator[tuple[Cluster, DatabaseUrls]]:
    settings = {"fsync": "off", "max_connections": str(MAX_CONNECTIONS)}
    with running_cluster(settings=settings) as cluster:
        yield cluster, provision(cluster, "platform", ("owner", "owner-pw-1"),
                                 ("app", APP_PASSWORD))


@pytest.fixture()
def layout(tmp_path: Path) -> ReleaseLayout:
    (tmp_path / "shared").mkdir()
    return ReleaseLayout(str(tmp_path))


def run(layout: ReleaseLayout, url: str, mode: str = "diagnose", **options: Any) -> Diagnosis:
    Path(layout.env_file).write_text(f"JWT_SECRET=x\nDATABASE_URL={url}\n")
    _command, stdin = dbscript.command_with_stdin(mode, layout, **options)
    result = subprocess.run([sys.executable, "-"], input=stdin, capture_output=True,
                            timeout=60, check=False)
    stdout = result.stdout.decode()
    assert APP_PASSWORD not in stdout + result.stderr.decode()
    return parse_diagnosis(stdout)


def test_a_healthy_database(pg: tuple[Cluster, DatabaseUrls], layout: ReleaseLayout) -> None:
    _cluster, urls = pg
    d = run(layout, urls.app)
    assert d.connected and d.latency_ms is not None and d.latency_ms > 0
    assert [s.name for s in d.steps] == ["dns", "tcp", "tls", "auth"]
    assert "password=****" in d.dsn
    levels = {f.check: f.level for f in findings(d, 30)}
    assert levels == {"connection": "ok", "connections": "ok", "sessions": "ok", "size": "ok"}
    assert d.connections is not None and d.connections.max == MAX_CONNECTIONS
    assert d.size_bytes and d.size_bytes > 1_000_000
    check = run(layout, urls.app, mode="check")
    assert check.connected and check.connections is None  # check stops after connecting


@pytest.mark.parametrize(("change", "words"), [
    (lambda u: u.replace(APP_PASSWORD, "wrong-password"), "authentication failed for user app"),
    (lambda u: u.replace("/platform", "/nowhere"), "database nowhere does not exist"),
    (lambda u: u + "?sslmode=require", "TLS required/failed (sslmode=require)"),
    (lambda u: u.replace("127.0.0.1", "db.invalid"), "DNS: db.invalid does not resolve"),
])
def test_connection_failures_are_named(pg: tuple[Cluster, DatabaseUrls], layout: ReleaseLayout,
                                       change: Any, words: str) -> None:
    d = run(layout, change(pg[1].app), mode="check")
    found = connection_finding(d)
    assert found.level == "fail" and words in found.line, found


def test_an_idle_transaction_is_listed_and_ended_only_when_asked(
        pg: tuple[Cluster, DatabaseUrls], layout: ReleaseLayout) -> None:
    url = pg[1].app
    with psycopg.connect(url) as idle:
        idle.execute("select 'a literal value', 42")
        listed = run(layout, url, idle_s=0)
        mine = [s for s in listed.sessions if s.pid == idle.info.backend_pid]
        assert mine and mine[0].idle_in_transaction and mine[0].state == "idle in transaction"
        assert "a literal value" not in mine[0].query and "'…'" in mine[0].query
        run(layout, url, idle_s=3600)  # over the threshold only: not listed, not touched
        idle.execute("select 1")
        ended = run(layout, url, idle_s=0, terminate=[mine[0].handle()])
        assert {"pid": mine[0].pid, "ok": True, "detail": "terminated"} in ended.terminated
        assert mine[0].pid not in [s.pid for s in ended.sessions]
        with pytest.raises(psycopg.OperationalError):
            idle.execute("select 1")


def test_a_reused_pid_is_not_terminated(pg: tuple[Cluster, DatabaseUrls],
                                        layout: ReleaseLayout) -> None:
    with psycopg.connect(pg[1].app) as idle:
        idle.execute("select 1")
        handle = {"pid": idle.info.backend_pid, "backend_start": "1999-01-01 00:00:00+00"}
        d = run(layout, pg[1].app, idle_s=0, terminate=[handle])
        assert d.terminated[0]["detail"] == "already gone"
        idle.execute("select 1")


def test_exhausted_connections_and_a_stopped_server(pg: tuple[Cluster, DatabaseUrls],
                                                    layout: ReleaseLayout) -> None:
    cluster, urls = pg
    held: list[psycopg.Connection[Any]] = []
    try:
        while True:
            try:
                held.append(psycopg.connect(urls.app))
            except psycopg.OperationalError:
                break
        d = run(layout, urls.app)
        assert "too many clients: max_connections exhausted" in connection_finding(d).line
        held.pop().close()
        nearly = run(layout, urls.app)
        used = next(f for f in findings(nearly, 30) if f.check == "connections")
        assert used.level == "fail" and used.line.startswith("too many clients"), used
    finally:
        for conn in held:
            conn.close()
    cluster.stop()
    try:
        stopped = run(layout, urls.app, mode="check")
        assert connection_finding(stopped).line.startswith(
            f"TCP: 127.0.0.1:{cluster.port}: connection refused (is PostgreSQL running?)")
    finally:
        cluster.start({"fsync": "off", "max_connections": str(MAX_CONNECTIONS)})
