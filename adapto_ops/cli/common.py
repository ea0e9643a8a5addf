"""What every command module shares: the app, common options, and run() for one-line errors."""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from typing import Annotated, Any, TypeVar

import typer

from adapto_ops.errors import AdaptoError

app = typer.Typer(
    name="adapto",
    help=(
        "The AI-platform runbook as a program: render configs, deploy over SSH, "
        "check health, read logs and recover.\n\n"
        "Every command reads ./inventory.yaml (or -i PATH, or $ADAPTO_INVENTORY) "
        "and acts on one environment (-e NAME)."
    ),
    no_args_is_help=True,
    rich_markup_mode=None,
    pretty_exceptions_enable=False,
    add_completion=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)

def sub_app(help_text: str, **settings: object) -> typer.Typer:
    """A command group with the top level's settings: plain help (start-up), -h, no args = help."""
    options: dict[str, object] = {"no_args_is_help": True, "rich_markup_mode": None,
                                  "context_settings": {"help_option_names": ["-h", "--help"]}}
    return typer.Typer(help=help_text, **(options | settings))  # type: ignore[arg-type]


InventoryOpt = Annotated[
    str | None,
    typer.Option(
        "--inventory", "-i", metavar="PATH",
        help="inventory file [default: $ADAPTO_INVENTORY or ./inventory.yaml]",
    ),
]
EnvOpt = Annotated[
    str, typer.Option("--env", "-e", metavar="NAME", help="environment from the inventory")
]
HostOpt = Annotated[
    list[str] | None,
    typer.Option("--host", metavar="NAME", help="only this host (repeatable)"),
]
VerboseOpt = Annotated[
    bool, typer.Option("--verbose", "-v", help="full tool output and tracebacks")
]

T = TypeVar("T")


def _verbose_requested() -> bool:
    return "--verbose" in sys.argv or "-v" in sys.argv or bool(os.environ.get("ADAPTO_VERBOSE"))


def run(action: Callable[[], T]) -> T:
    """Run a command body: user errors become one-line messages and exit codes."""
    try:
        return action()
    except AdaptoError as exc:
        if _verbose_requested():
            import traceback

            traceback.print_exc()
        for line in exc.lines():
            typer.echo(f"error: {line}", err=True)
        raise typer.Exit(exc.exit_code) from None
    except KeyboardInterrupt:
        typer.echo("interrupted", err=True)
        raise typer.Exit(130) from None
    except OSError as exc:
        # Last resort: the sources name what they were doing; this names at least the
        # command, the file and the error, never a traceback (-v shows it).
        if _verbose_requested():
            import traceback

            traceback.print_exc()
        typer.echo(f"error: {os_error_line(exc)}", err=True)
        raise typer.Exit(1) from None


def _command_name() -> str:
    """`adapto <group> <command>` as typed: the first words of argv that are not options."""
    words: list[str] = []
    for arg in sys.argv[1:3]:
        if arg.startswith("-"):
            break
        words.append(arg)
    return " ".join(["adapto", *words])


def os_error_line(exc: OSError) -> str:
    """One line for an OSError nothing closer handled: command, what failed, where, next."""
    what = exc.strerror or type(exc).__name__
    paths = " -> ".join(str(p) for p in (exc.filename, exc.filename2) if p is not None)
    where = f" on {paths}" if paths else ""
    errno = f" (errno {exc.errno})" if exc.errno else ""
    return (f"{_command_name()}: {what}{where}{errno}; check that path and its permissions, "
            "then run it again (-v shows where it happened)")


JsonOpt = Annotated[bool, typer.Option("--json", help="one JSON event per line (for CI)")]
# Commands that answer with one document rather than a stream of events.
JsonObjectOpt = Annotated[bool, typer.Option("--json", help="one JSON object")]
YesOpt = Annotated[bool, typer.Option("--yes", "-y", help="do not ask for confirmation")]
BreakLockOpt = Annotated[
    bool, typer.Option("--break-lock", help="remove a stale deploy lock left by a dead deploy")
]


def dry_run_option(help_text: str = "print the commands, change nothing") -> Any:
    """--dry-run; each group may say what its dry run still reads or prints."""
    return typer.Option("--dry-run", help=help_text)


DryRunOpt = Annotated[bool, dry_run_option()]


def exit_with(code: int) -> None:
    """Leave with the procedure's exit code (0 returns normally)."""
    if code:
        raise typer.Exit(code)


def run_procedure(module: str, function: str, **kwargs: Any) -> None:
    """run() a procedure that returns an exit code, imported only now (fast start-up)."""
    def body() -> None:
        import importlib

        exit_with(getattr(importlib.import_module(module), function)(**kwargs))

    run(body)
