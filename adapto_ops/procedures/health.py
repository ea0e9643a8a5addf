"""`adapto health`: run every check (adapto_ops.health.run) and report it.

A table for people, or --json (application/health+json), --junit FILE and,
on GitHub Actions, annotations and a step summary. Exit 0 when everything
passes, 1 on a failure; warnings (a budget exceeded, a certificate close to
expiry) fail only with --strict.
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

from adapto_ops.errors import AdaptoError
from adapto_ops.health.model import exit_code
from adapto_ops.selection import select


def run_health(*, inventory: str | None, env_name: str, hosts: list[str] | None,
               as_json: bool, junit: Path | None = None, strict: bool = False) -> int:
    """Check, report, and return the exit code."""
    from adapto_ops.health import report
    from adapto_ops.health.run import run_checks

    selection = select(inventory, env_name, hosts)
    started = time.perf_counter()
    results = run_checks(selection)
    wall_s = time.perf_counter() - started
    if junit is not None:
        try:
            junit.parent.mkdir(parents=True, exist_ok=True)
            junit.write_text(report.junit_xml(results, env_name, strict=strict),
                             encoding="utf-8")
        except OSError as exc:
            raise AdaptoError(f"--junit {junit}: cannot write: {exc.strerror}") from None
    if os.environ.get("GITHUB_ACTIONS") == "true":
        # The runner reads workflow commands from stderr too; stdout stays pure JSON.
        for line in report.github_annotations(results, strict=strict):
            print(line, file=sys.stderr if as_json else sys.stdout)
        summary = os.environ.get("GITHUB_STEP_SUMMARY")
        if summary:
            with open(summary, "a", encoding="utf-8") as handle:
                handle.write(report.step_summary(results, env_name))
    if as_json:
        print(json.dumps(report.health_json(results, env_name), indent=2))
    else:
        report.print_table(results, env_name, wall_s)
    return exit_code(results, strict=strict)
