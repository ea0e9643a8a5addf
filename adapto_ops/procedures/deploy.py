"""`adapto deploy`, `adapto rollback`, `adapto releases`: reporters, prompts, summaries."""

from __future__ import annotations

import json
import sys
import time
from typing import Any

from adapto_ops.errors import EXIT_FAILED, EXIT_OK, AdaptoError
from adapto_ops.events import Event, JsonReporter, Reporter, RichReporter
from adapto_ops.output import console
from adapto_ops.selection import Selection, select


def make_reporter(as_json: bool) -> Reporter:
    return JsonReporter() if as_json else RichReporter()


def confirm(selection: Selection, action: str, yes: bool) -> None:
    """Ask before touching a non-sandbox environment, only when a person is at the terminal."""
    if yes or selection.env.sandbox is not None or not sys.stdin.isatty():
        return
    hosts = ", ".join(t.host.name for t in selection.targets)
    answer = input(f"{action} on {selection.env_name} ({hosts})? [y/N] ").strip().lower()
    if answer not in {"y", "yes"}:
        raise AdaptoError("cancelled; nothing was changed")


def _summary(report: Any, reporter: Reporter, title: str) -> None:
    rows = [
        {"host": o.host, "release": o.release, "previous": o.previous, "result": o.result,
         "files_sent": o.files_sent, "bytes_sent": o.bytes_sent, "error": o.error}
        for o in report.outcomes
    ]
    reporter.emit(Event("result", title, "ok" if report.ok else "failed",
                        data={"release": report.release, "hosts": rows,
                              "duration_s": round(report.duration_s, 2)}))
    for r in rows:
        if r["error"]:
            # One line per failed host on stderr, whatever the reporter: what CI logs show.
            back = f" (now on {r['previous']})" if r["result"] == "rolled-back" else ""
            print(f"error: {title} {r['release']} {r['result']} on {r['host']}{back}: "
                  f"{r['error']}", file=sys.stderr)
    if isinstance(reporter, RichReporter):
        from rich.markup import escape
        from rich.table import Table

        table = Table(title=f"{title} {report.release or ''} in {report.duration_s:.1f}s")
        for column in ("host", "release", "previous", "result", "sent", "error"):
            table.add_column(column)
        for r in rows:
            color = "green" if r["result"] in {"ok", "dry-run"} else "red"
            table.add_row(r["host"], r["release"] or "-", r["previous"] or "-",
                          f"[{color}]{r['result']}[/]",
                          f"{r['files_sent']} files, {r['bytes_sent'] / 1e3:.1f} kB",
                          escape(r["error"] or ""))
        reporter.console.print(table)


def run_deploy(*, inventory: str | None, env_name: str, hosts: list[str] | None, what: str,
               dry_run: bool, yes: bool, skip_build: bool, break_lock: bool, force: bool,
               as_json: bool, batch: int | None = None, rebuild: bool = False) -> int:
    from adapto_ops.deploy.run import DeployOptions, deploy

    selection = select(inventory, env_name, hosts)
    if not dry_run:
        confirm(selection, f"deploy {what}", yes)
    reporter = make_reporter(as_json)
    try:
        options = DeployOptions(what, dry_run, skip_build, break_lock, force, batch, rebuild)
        report = deploy(selection, options, reporter)
        if dry_run:
            _print_dry_run(report, reporter)
        _summary(report, reporter, "dry run" if dry_run else "deploy")
    finally:
        reporter.close()
    return EXIT_OK if report.ok else EXIT_FAILED


def _print_dry_run(report: Any, reporter: Reporter) -> None:
    if isinstance(reporter, JsonReporter):
        for c in report.recorded:
            reporter.emit(Event("info", "would-run", c.command, c.host,
                                {"stdin_bytes": c.stdin_bytes}))
        for host, path, diff in report.diffs:
            reporter.emit(Event("info", "diff", path, host, {"diff": diff}))
        return
    out = sys.stdout
    out.write("\n# Commands a deploy would run (nothing was changed):\n")
    for c in report.recorded:
        extra = f"   # + {c.stdin_bytes} bytes on stdin" if c.stdin_bytes else ""
        out.write(f"[{c.host}] {c.command}{extra}\n")
    out.write("\n# Config changes:\n")
    for _host, _path, diff in report.diffs:
        out.write(diff if diff.endswith("\n") else diff + "\n")
    if not report.diffs:
        out.write("(none)\n")
    out.flush()


def run_rollback(*, inventory: str | None, env_name: str, hosts: list[str] | None,
                 to: str | None, yes: bool, break_lock: bool, as_json: bool) -> int:
    from adapto_ops.deploy.rollback import rollback

    selection = select(inventory, env_name, hosts)
    confirm(selection, f"roll back{' to ' + to if to else ''}", yes)
    reporter = make_reporter(as_json)
    try:
        report = rollback(selection, to, reporter, break_lock=break_lock)
        _summary(report, reporter, "rollback")
    finally:
        reporter.close()
    return EXIT_OK if report.ok else EXIT_FAILED


def _age(created: str | None) -> str:
    if not created:
        return "?"
    try:
        seconds = time.time() - time.mktime(time.strptime(created, "%Y-%m-%dT%H:%M:%SZ")) \
            + time.mktime(time.gmtime(0))
    except ValueError:
        return "?"
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{int(seconds // size)}{unit}"
    return f"{int(seconds)}s"


def run_releases(*, inventory: str | None, env_name: str, hosts: list[str] | None,
                 as_json: bool) -> int:
    """Table of releases per host: id, age, revision, current, last result."""
    from adapto_ops.commands import release as rel
    from adapto_ops.deploy.host import HostDeployer
    from adapto_ops.deploy.session import Session, parallel
    from adapto_ops.events import ListReporter

    selection = select(inventory, env_name, hosts)

    def collect(d: HostDeployer) -> list[dict[str, Any]]:
        state = d.read_state()
        history = d.t.run(rel.read_history(d.layout), mutates=False, check=False).stdout
        results: dict[str, str] = {}
        for line in history.splitlines():
            try:
                record = json.loads(line)
            except json.JSONDecodeError:
                continue
            if record.get("release"):
                results[record["release"]] = f"{record.get('action', '')}: {record.get('result')}"
        return [
            {"host": d.name, "id": r.id, "age": _age((r.meta or {}).get("created")),
             "revision": (r.meta or {}).get("revision", "?"), "current": r.id == state.current,
             "result": results.get(r.id, "incomplete" if not r.complete else "?"),
             "live": r.live}
            for r in state.releases
        ]

    with Session(selection, ListReporter(), dry_run=False) as session:
        rows = [row for result in parallel(session.deployers, collect)
                for row in (result if not isinstance(result, BaseException) else [])]
    if as_json:
        print(json.dumps(rows, indent=2))
        return EXIT_OK
    from rich.table import Table

    table = Table(title=f"releases on {selection.env_name}")
    for column in ("host", "id", "age", "revision", "current", "result"):
        table.add_column(column)
    for r in rows:
        table.add_row(r["host"], r["id"], r["age"], r["revision"], "*" if r["current"] else "",
                      r["result"])
    console().print(table)
    return EXIT_OK
