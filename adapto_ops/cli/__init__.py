"""The `adapto` command line: thin Typer commands over the procedures.

One module per command group; importing it registers its commands on `app`
(the order of the imports is the order of `adapto --help`). Start-up matters
(`adapto --help` answers in well under 150 ms), so these modules import only
typer; pydantic, jinja2, paramiko, fabric, httpx and rich are imported inside
the commands that use them.
"""

from __future__ import annotations

import os
import sys

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
    ssl,
    telegram,
)
from adapto_ops.cli.common import app
from adapto_ops.errors import EXIT_USAGE

# Commands that leave no local file open and no thread running when they return: they
# may skip the interpreter's teardown (see _exit_now).
FAST_EXIT = frozenset({"deploy", "rollback", "releases"})


def main() -> None:
    """Console-script entry point."""
    try:
        app()
    except SystemExit as exc:
        # click reports usage errors with exit code 2, which is ours too.
        code = exc.code if exc.code is not None else 0
        if isinstance(code, int) and len(sys.argv) > 1 and sys.argv[1] in FAST_EXIT:
            _exit_now(code)
        raise SystemExit(code) from None


def _exit_now(code: int) -> None:
    """Exit at once, after atexit handlers and flushing output, without tearing down modules.

    With paramiko, cryptography, pydantic and rich loaded, the interpreter's
    finalization took 0.3-1.0 s of a 2-3 s deploy on a busy 2-core machine
    (measured: last atexit handler to process end). Skipped only when no other
    non-daemon thread is alive; otherwise the normal exit joins it.
    """
    import atexit
    import threading

    atexit._run_exitfuncs()
    if any(t.is_alive() and not t.daemon and t is not threading.main_thread()
           for t in threading.enumerate()):
        return
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):
            pass  # a closed pipe: nothing more can be said
    os._exit(code)


__all__ = ["EXIT_USAGE", "app", "main"]
