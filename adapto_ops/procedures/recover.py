"""`adapto recover backend|nginx|database`: prompt, run, say what was done and what is true."""

from __future__ import annotations

import sys

from adapto_ops.errors import EXIT_FAILED, EXIT_OK
from adapto_ops.events import Event, JsonReporter, Reporter, RichReporter
from adapto_ops.recover.report import RecoverReport


def run_recover(*, inventory: str | None, env_name: str, hosts: list[str] | None, what: str,
                dry_run: bool, yes: bool, as_json: bool, break_lock: bool = False) -> int:
    """Exit 0 when every host ends healthy, 1 when not (one `error:` line per failing thing)."""
    from adapto_ops.procedures.deploy import confirm, make_reporter
    from adapto_ops.recover.run import check_what, recover
    from adapto_ops.selection import select

    check_what(what)
    selection = select(inventory, env_name, hosts)
    # `recover database` changes something only with --yes (that is its consent):
    # without it, it only reads, so there is nothing to confirm.
    if not dry_run and what != "database":
        confirm(selection, f"recover {what}", yes)
    reporter = make_reporter(as_json)
    try:
        report = recover(selection, what, reporter, dry_run=dry_run,
                         fix=yes or what != "database", break_lock=break_lock)
        if dry_run:
            _print_dry_run(report, reporter)
        _summary(report, reporter)
    finally:
        reporter.close()
    if dry_run:
        return EXIT_OK
    return EXIT_OK if report.healthy else EXIT_FAILED


def _summary(report: RecoverReport, reporter: Reporter) -> None:
    verdict = ("dry run" if report.dry_run else "healthy" if report.healthy else "still failing")
    reporter.emit(Event("result", f"recover {report.what}", verdict,
                        data={"healthy": report.healthy, "dry_run": report.dry_run,
                              "hosts": [h.as_dict() for h in report.hosts],
                              "duration_s": round(report.duration_s, 2)}))
    if isinstance(reporter, RichReporter):
        out = reporter.console
        from rich.markup import escape

        for h in report.hosts:
            if h.nothing_to_do and h.healthy:
                head = "[green]nothing to do[/]: healthy"
            elif h.nothing_to_do:
                head = f"[red]still failing[/], and nothing recover {report.what} can do"
            elif report.dry_run:
                head = "[yellow]dry run[/]: nothing was changed"
            else:
                head = "[green]healthy[/]" if h.healthy else "[red]still failing[/]"
            out.print(f"[bold]{escape(h.host)}[/] {head}")
            label = "would do" if report.dry_run else "did"
            for action in h.actions:
                out.print(f"  {label}: {escape(action)}")
            for fact in h.now:
                out.print(f"  now: {escape(fact)}")
    if not report.dry_run:
        # One line per thing that still fails, on stderr, whatever the reporter: what CI shows.
        for line in report.still_failing:
            print(f"error: {line}", file=sys.stderr)


def _print_dry_run(report: RecoverReport, reporter: Reporter) -> None:
    if isinstance(reporter, JsonReporter):
        for c in report.recorded:
            reporter.emit(Event("info", "would-run", c.command, c.host))
        return
    out = sys.stdout
    out.write("\n# Commands recover would run (nothing was changed):\n")
    for c in report.recorded:
        out.write(f"[{c.host}] {c.command}\n")
    if not report.recorded:
        out.write("(none)\n")
    out.flush()
