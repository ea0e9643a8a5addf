"""`adapto recover database` on one host: the runbook's "Database errors", in its order.

1. The connection, from the host (the database may listen on its loopback
   only), with the backend's DATABASE_URL: DNS, TCP, TLS, authentication,
   the database itself, each named; the DSN shown with its password masked.
2. Connections used against max_connections (warn at 80 %, fail at 95 %).
3. Sessions idle in a transaction longer than ``IDLE_IN_TRANSACTION_S`` or
   blocking others: listed (pid, user, state, age, the query's shape, never
   its values); terminated only with --yes.
4. Pending migrations: the inventory's ``backend.migrate --status`` when there
   is one, else the backend's /api/health; applied only with --yes, through
   that migrate command from the live release, on the first backend host.
5. The database's size, reported.

What adapto does not own (a stopped server, a wrong password, a full
connection limit held by something else) is named, not touched. All the
reading is one script run by the release venv's python on the host
(:mod:`adapto_ops.commands.dbscript`); :mod:`adapto_ops.dbdiag` reads its
answer.
"""

from __future__ import annotations

from adapto_ops.commands import db as db_cmd
from adapto_ops.commands import dbscript
from adapto_ops.dbdiag import Diagnosis, Finding, findings, parse_diagnosis
from adapto_ops.deploy.host import HostDeployer
from adapto_ops.events import Event
from adapto_ops.health.onhost import instance_urls
from adapto_ops.recover.report import HostRecovery, mask_secrets

IDLE_IN_TRANSACTION_S = dbscript.IDLE_IN_TRANSACTION_S


def migrate_command(d: HostDeployer, status: bool) -> str | None:
    """The inventory's migrate command, from the live release with the shared .env; or None.

    The .env (MIGRATION_DATABASE_URL) is read on the host, never sent or printed.
    """
    migrate = d.env.backend.migrate
    if not migrate:
        return None
    return db_cmd.migrate(f"{d.layout.current}/backend", d.layout.env_file, migrate,
                          status=status)


def pending_from_status(stdout: str) -> int | None:
    """How many migrations `--status` lists as pending; None without its summary line."""
    pending, total = db_cmd.parse_status(stdout)
    return len(pending) if total is not None else None


class DatabaseRecovery:
    """One host's diagnosis and, with ``fix``, what adapto may mend."""

    def __init__(self, d: HostDeployer, secret_values: list[str], *, fix: bool,
                 migrate_here: bool, idle_s: float = IDLE_IN_TRANSACTION_S) -> None:
        self.d, self.secret_values = d, secret_values
        self.fix, self.migrate_here, self.idle_s = fix, migrate_here, idle_s
        self.health_url = instance_urls(d.target)[0][0]
        self.out = HostRecovery(d.name)

    def diagnose(self, terminate: list[dict[str, object]] | None = None) -> Diagnosis:
        """Run the script on the host (reads only, unless ``terminate`` names sessions)."""
        command, stdin = dbscript.command_with_stdin(
            "diagnose", self.d.layout, health_url=self.health_url, terminate=terminate,
            idle_s=self.idle_s, timeout_s=5.0)
        what = ("terminate sessions " + ", ".join(str(t["pid"]) for t in terminate)
                if terminate else "diagnose the database")
        result = self.d.t.run(command, check=False, stdin=stdin, mutates=bool(terminate),
                              what=what, timeout=60)
        return parse_diagnosis(mask_secrets(result.stdout, self.secret_values))

    def pending_migrations(self) -> int | None:
        """From the migrate command's --status, when the inventory names one."""
        command = migrate_command(self.d, status=True)
        if command is None:
            return None
        result = self.d.t.run(command, check=False, mutates=False, what="migrate --status",
                              timeout=120)
        return pending_from_status(result.stdout) if result.ok else None

    def report(self, diagnosis: Diagnosis, pending: int | None) -> list[Finding]:
        """Each finding as an event (what a person reads), sessions one line each."""
        found = findings(diagnosis, self.idle_s, pending)
        if diagnosis.dsn:
            self.d.reporter.emit(Event("info", "dsn", diagnosis.dsn, self.d.name,
                                       {"dsn": diagnosis.dsn}))
        for step in diagnosis.steps:
            self.d.reporter.emit(Event("ok" if step.ok else "fail", step.name, step.line,
                                       self.d.name, {"ms": step.ms}))
        for f in found:
            kind = {"ok": "ok", "warn": "warn", "fail": "fail"}[f.level]
            self.d.reporter.emit(Event(kind, f.check, f.line, self.d.name, {"level": f.level}))
        for s in diagnosis.sessions:
            self.d.reporter.emit(Event("warn", "session", s.line, self.d.name,
                                       {"pid": s.pid, "user": s.user, "state": s.state,
                                        "age_s": s.age_s, "query": s.query,
                                        "blocking": list(s.blocking)}))
        return found

    def run(self) -> HostRecovery:
        """Diagnose; with ``fix``, end the listed sessions and migrate; diagnose again."""
        d, out = self.d, self.out
        with d.step("diagnose", "connection, connections, sessions, migrations, size") as s:
            before = self.diagnose()
            pending = self.pending_migrations() if before.connected else None
            found = self.report(before, pending)
            s.failed = any(f.level == "fail" for f in found)
            s.done_message = "; ".join(f"{f.check} {f.level}" for f in found)
        if before.configured is False:
            out.nothing_to_do = out.healthy = True
            out.now.append("no DATABASE_URL in the shared .env: nothing to check")
            return out
        count = pending if pending is not None else before.migrations_pending
        acted = False
        if before.sessions:
            acted |= self._sessions(before)
        if count and self.migrate_here:
            acted |= self._migrate(count)
        if not acted:
            out.nothing_to_do = not before.sessions and not count
            self._describe(before, pending)
            return out
        if d.dry_run:
            self._describe(before, pending)
            return out
        with d.step("check", "the database again") as s:
            after = self.diagnose()
            pending = self.pending_migrations() if after.connected else None
            again = findings(after, self.idle_s, pending)
            s.failed = any(f.level == "fail" for f in again)
            s.done_message = "; ".join(f"{f.check} {f.level}" for f in again)
        self._describe(after, pending)
        return out

    def _sessions(self, before: Diagnosis) -> bool:
        handles = [s.handle() for s in before.sessions]
        pids = ", ".join(str(s.pid) for s in before.sessions)
        if not self.fix:
            return False
        with self.d.step("terminate", f"pg_terminate_backend({pids})") as s:
            result = self.diagnose(terminate=handles)
            if self.d.dry_run:
                s.done_message = "not run (dry run)"
            else:
                ended = [t for t in result.terminated if t.get("ok")]
                s.failed = len(ended) < len(handles)
                s.done_message = "; ".join(f"pid {t.get('pid')} {t.get('detail')}"
                                           for t in result.terminated) or result.error or "?"
        self.out.actions.append(f"terminate session(s) {pids} (pg_terminate_backend)")
        return True

    def _migrate(self, count: int) -> bool:
        command = migrate_command(self.d, status=False)
        if command is None or not self.fix:
            return False
        with self.d.step("migrate", f"{count} pending: {self.d.env.backend.migrate}") as s:
            result = self.d.t.run(command, check=False, what="migrate", timeout=600)
            if not result.ok:
                s.failed = True
                s.done_message = mask_secrets(result.last_error_line(), self.secret_values)
        self.out.actions.append(f"apply {count} pending migration(s)")
        return True

    def _describe(self, state: Diagnosis, pending: int | None) -> None:
        """What is true now; each remaining problem (fail, or sessions/migrations) a line."""
        out = self.out
        problems = 0
        for f in findings(state, self.idle_s, pending):
            out.now.append(f"{f.check}: {f.line}")
            if f.level == "fail" or (f.check == "migrations" and f.level == "warn"):
                problems += 1
                out.still_failing.append(f"database {f.check}: {f.line}{self._hint(f)}")
        for session in state.sessions:
            out.now.append(f"session {session.line}")
        out.healthy = problems == 0

    def _hint(self, f: Finding) -> str:
        env = self.d.target.env_name
        if f.check == "sessions" and not self.fix:
            return f" (`adapto recover database -e {env} --yes` terminates them)"
        if f.check == "migrations":
            if migrate_command(self.d, status=False) is None:
                return " (the inventory names no backend.migrate command)"
            if not self.fix:
                return (f" (`adapto recover database -e {env} --yes` or "
                        f"`adapto db migrate -e {env}` applies them)")
        return ""


def recover_database(d: HostDeployer, secret_values: list[str], *, fix: bool,
                     migrate_here: bool) -> HostRecovery:
    """Diagnose the database from one host; with ``fix``, mend what is adapto's to mend."""
    return DatabaseRecovery(d, secret_values, fix=fix, migrate_here=migrate_here).run()
