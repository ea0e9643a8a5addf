"""`adapto render`: print, write or check the rendered configs of an environment."""

from __future__ import annotations

import os
import sys
from pathlib import Path

from adapto_ops.errors import EXIT_FAILED, EXIT_OK, AdaptoError
from adapto_ops.output import console
from adapto_ops.render.configs import KINDS, RenderedFile, render_target
from adapto_ops.selection import select


def _write(path: Path, file: RenderedFile) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    # Create with the final mode so a secret never exists world-readable, even briefly.
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, file.mode)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        handle.write(file.text)
    os.chmod(path, file.mode)


def run_render(
    *,
    inventory: str | None,
    env_name: str,
    hosts: list[str] | None,
    what: str,
    out: Path | None,
    check: bool,
    verbose: bool,
) -> int:
    """Render (and optionally check) configs; returns the exit code."""
    selection = select(inventory, env_name, hosts)
    kinds = KINDS if what == "all" else (what,)
    secrets = selection.secrets()
    if secrets.missing and ("env" in kinds):
        print(
            f"warning: secret(s) not set: {', '.join(secrets.missing)} — export them or add "
            f"them to {selection.secrets_file}; the env file leaves them out",
            file=sys.stderr,
        )
    many = len(selection.targets) > 1
    rendered = [
        (target, render_target(target, kinds, secrets, str(selection.secrets_file)))
        for target in selection.targets
    ]
    if out is not None:
        try:
            for target, files in rendered:
                base = out / target.host.name if many else out
                for file in files:
                    path = base / file.kind / file.name
                    _write(path, file)
                    print(f"wrote {path}  ->  {target.host.name}:{file.path}")
        except OSError as exc:
            raise AdaptoError(f"cannot write under {out}: {exc.strerror} ({exc.filename})") \
                from None
    elif not check:
        for target, files in rendered:
            for file in files:
                sys.stdout.write(f"# ===== {target.host.name}: {file.path} =====\n{file.shown}\n")
    if not check:
        return EXIT_OK
    return _report_checks(rendered, verbose)


def _report_checks(rendered: list, verbose: bool) -> int:
    from rich.markup import escape

    from adapto_ops.render.checks import check_file

    out = console()
    failed = 0
    for target, files in rendered:
        for file in files:
            result = check_file(file, target)
            mark = "[green]ok[/]  " if result.ok else "[red]FAIL[/]"
            out.print(f"{mark} {result.kind:<9} {result.host:<10} {escape(result.summary)}")
            for warning in result.warnings:
                out.print(f"     [yellow]warning[/] {escape(warning)}")
            if verbose and result.output.strip():
                out.print(escape(result.output.rstrip()), style="dim")
            failed += not result.ok
    return EXIT_FAILED if failed else EXIT_OK
