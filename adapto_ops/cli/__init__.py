"""The `adapto` command line: thin Typer commands over the procedures.

One module per command group; importing it registers its commands on `app`
(the order of the imports is the order of `adapto --help`). Start-up matters
(`adapto --help` answers in well under 150 ms), so these modules import only
typer; pydantic, jinja2, paramiko, fabric, httpx and rich are imported inside
the commands that use them.
"""

from __future__ import annotations

from adapto_ops.cli import (  # noqa: F401  (each import registers its commands)
    audit,
    config,
    db,
    deploy,
    firewall,
    monitor,
    operate,
    sandbox,
    secrets,
    telegram,
)
from adapto_ops.cli.common import app
from adapto_ops.errors import EXIT_USAGE


def main() -> None:
    """Console-script entry point."""
    try:
        app()
    except SystemExit as exc:
        # click reports usage errors with exit code 2, which is ours too.
        raise SystemExit(exc.code if exc.code is not None else 0) from None


__all__ = ["EXIT_USAGE", "app", "main"]
