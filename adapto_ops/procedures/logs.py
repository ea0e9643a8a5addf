"""`adapto logs`: the last lines of PM2's and nginx's log files over SSH, or follow them.

Where filtering happens: here, not on the host. ``--grep`` is a Python
regular expression (grep -E on the host would read it differently) and
``--since`` needs each format's time parsed (nginx's error log in the
server's local time), which a host without Python cannot do the same way.
What crosses the wire is bounded instead: each file is read as a window of
its last bytes (64 KiB first), and the window grows eightfold while it holds
fewer than N matching lines and the file has more — up to 32 MiB per file,
or until a line older than ``--since`` shows nothing earlier can match. So
"last N" means the last N lines that pass the filters, per file (as
``tail -n N a b`` and ``pm2 logs --lines N``), merged across files by time.

Secrets are masked before ``--grep`` sees a line, so a pattern cannot find
one. ``--follow`` streams each file on an SSH channel of its own (threads
feeding one queue) from the byte where the window ended, so no line is lost
or shown twice; ``tail -F`` keeps following across a logrotate rotation.
"""

from __future__ import annotations

import heapq
import os
import sys
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timezone
from typing import Any

from adapto_ops.commands import logs as cmd
from adapto_ops.commands.logs import LogSource
from adapto_ops.errors import EXIT_FAILED, EXIT_OK, AdaptoError
from adapto_ops.logs.lines import (
    LineFilter,
    Masker,
    compile_grep,
    offset_zone,
    parse_since,
    prefix_width,
    prefixed,
)
from adapto_ops.selection import Selection, select

DEFAULT_LINES = 100  # as `kamal app logs`
FOLLOW_LINES = 10  # kamal's default when following
FIRST_WINDOW = 64 * 1024
MAX_WINDOW = 32 * 1024 * 1024
_OLDEST = datetime.min.replace(tzinfo=UTC)


@dataclass(frozen=True)
class LogOptions:
    what: str
    lines: int | None = None  # None: 100, or 10 when following
    follow: bool = False
    grep: str | None = None
    since: str | None = None
    instance: int | None = None

    @property
    def wanted(self) -> int:
        if self.lines is not None:
            return self.lines
        return FOLLOW_LINES if self.follow else DEFAULT_LINES


@dataclass
class SourceRead:
    """One file's window after filtering: the lines to show and where a follow starts."""

    source: LogSource
    state: str  # ok | missing | unreadable | failed
    filter: LineFilter
    lines: list[tuple[datetime, str]] = field(default_factory=list)
    offset: int | None = None  # the byte a follow starts at (None: from the file's start)
    partial: str = ""  # an unfinished last line; the follow's first piece completes it
    capped: bool = False
    error: str = ""


def read_source(transport: Any, source: LogSource, options: LogOptions,
                make_filter: Callable[[LogSource, timezone], LineFilter],
                masker: Masker) -> SourceRead:
    """The last ``options.wanted`` lines of one file that pass the filters."""
    want = options.wanted
    size = min(MAX_WINDOW, max(FIRST_WINDOW, want * 512))
    while True:
        window = cmd.parse_window(_window_output(transport, source.path, size))
        if window.state != "ok":
            cut = "its output was cut short; try again" if window.state == "failed" else ""
            return SourceRead(source, window.state, make_filter(source, UTC), error=cut)
        filt = make_filter(source, offset_zone(window.utc_offset))
        # Masked in one pass over the window, before --grep sees any line.
        raw = masker(window.text).split("\n")
        partial = raw.pop()  # "" when the window ends with a newline
        if window.start > 0 and raw:
            raw = raw[1:]  # the window began inside this line
        if not options.follow and partial:
            raw, partial = [*raw, partial], ""
        kept = [(filt.last_time or _OLDEST, line) for line in raw if filt.accept(line)]
        more_in_file = window.start > 0
        if len(kept) >= want or not more_in_file or filt.saw_older or size >= MAX_WINDOW:
            return SourceRead(source, "ok", filt, kept[-want:] if want else [],
                              offset=window.size, partial=partial,
                              capped=more_in_file and size >= MAX_WINDOW and len(kept) < want)
        size *= 8


def _window_output(transport: Any, path: str, size: int) -> str:
    """What :func:`cmd.read_window` prints; large windows on a channel of their own.

    The long-lived shell gathers a command's whole output before parsing it, which
    is fine for kilobytes; megabytes stream line by line instead (one login-shell
    start, ~0.1 s, against seconds of re-scanning a growing buffer).
    """
    command = cmd.read_window(path, size)
    if size <= FIRST_WINDOW:
        return transport.run(command, check=False, mutates=False, what=f"read {path}",
                             timeout=120).stdout
    stream = transport.stream(command)
    try:
        return "".join(line + "\n" for line in stream)
    finally:
        stream.close()


def _read_host(transport: Any, sources: list[LogSource], options: LogOptions,
               make_filter: Callable[[LogSource, timezone], LineFilter],
               masker: Masker) -> list[SourceRead]:
    reads = []
    for source in sources:
        try:
            reads.append(read_source(transport, source, options, make_filter, masker))
        except AdaptoError as exc:
            reads.append(SourceRead(source, "failed", make_filter(source, UTC),
                                    error=exc.message))
    return reads


class Printer:
    """Writes prefixed lines to stdout and notes to stderr; a closed pipe ends quietly."""

    def __init__(self, sources: list[LogSource]) -> None:
        self.prefix = len(sources) > 1
        self.width = prefix_width(s.where for s in sources)
        self._lock = threading.Lock()

    def line(self, source: LogSource, text: str) -> None:
        """One log line, prefixed with its host and file when there is more than one file."""
        with self._lock:
            sys.stdout.write(prefixed(source.where if self.prefix else None, self.width, text)
                             + "\n")

    def flush(self) -> None:
        """Push buffered lines out (after a burst, so a follow shows them at once)."""
        sys.stdout.flush()

    @staticmethod
    def note(text: str) -> None:
        """A line about the files (missing, unreadable, an error) on stderr."""
        sys.stderr.write(text + "\n")
        sys.stderr.flush()


def _validate(selection: Selection, options: LogOptions) -> None:
    ports = selection.env.backend.ports
    if options.instance is not None:
        if options.what != "backend":
            raise AdaptoError(f"--instance {options.instance}: only backend logs are per "
                              f"instance (not {options.what})")
        if options.instance not in ports:
            raise AdaptoError(f"--instance {options.instance}: environment "
                              f"{selection.env_name!r} has no instance on that port "
                              f"(ports: {', '.join(map(str, ports))})")
    if options.lines is not None and options.lines < 0:
        raise AdaptoError(f"--lines {options.lines}: must be 0 or more")


def run_logs(*, inventory: str | None, env_name: str, hosts: list[str] | None,
             options: LogOptions) -> int:
    """Print (or follow) the logs; 0 ok, 1 a host unreachable or no log file at all."""
    from adapto_ops.deploy.session import open_transport, parallel

    # Bad options fail (exit 2) before any host is contacted.
    grep = compile_grep(options.grep) if options.grep is not None else None
    since = parse_since(options.since) if options.since is not None else None
    selection = select(inventory, env_name, hosts)
    _validate(selection, options)
    per_host = [(t, cmd.log_sources(t, options.what, options.instance))
                for t in selection.targets]
    per_host = [(t, s) for t, s in per_host if s]
    if not per_host:
        raise AdaptoError(f"environment {env_name!r}: no selected host has {options.what} logs "
                          "(check the hosts' roles: web for nginx, backend for backend)")
    try:
        secret_values = list(selection.secrets().values.values())
    except OSError as exc:  # an unreadable secrets file must not stop an operator reading logs
        Printer.note(f"note: secrets not read ({exc.strerror}); their values are not masked")
        secret_values = []
    masker = Masker(secret_values)

    def make_filter(source: LogSource, local: timezone) -> LineFilter:
        return LineFilter(source.format, grep=grep, since=since, local=local)

    code = EXIT_OK
    connected = parallel([t for t, _ in per_host], lambda t: open_transport(selection, t))
    transports: list[Any] = []
    sources: list[LogSource] = []
    for (_, host_sources), transport in zip(per_host, connected, strict=True):
        if isinstance(transport, BaseException):
            Printer.note(f"error: {getattr(transport, 'message', None) or transport}")
            code = EXIT_FAILED
            continue
        transports.append(transport)
        sources.extend(host_sources)
    try:
        host_reads = parallel(
            transports,
            lambda t: _read_host(t, [s for s in sources if s.host == t.host.name], options,
                                 make_filter, masker)) if transports else []
        reads: list[SourceRead] = []
        for transport, host_read in zip(transports, host_reads, strict=True):
            if isinstance(host_read, BaseException):
                Printer.note(f"error: {transport.host.name}: "
                             f"{getattr(host_read, 'message', None) or host_read}")
                code = EXIT_FAILED
                continue
            reads.extend(host_read)
        printer = Printer(sources)
        if _show_snapshot(reads, printer, following=options.follow) == 0 and not options.follow:
            if reads:
                Printer.note(f"error: no {options.what} log file exists on "
                             f"{', '.join(sorted({r.source.host for r in reads}))}")
            code = EXIT_FAILED
        if options.follow and reads:
            from adapto_ops.procedures.logs_follow import follow

            by_name = {t.host.name: t for t in selection.targets}
            code = max(code, follow(transports, reads, masker, printer,
                                    lambda host: open_transport(selection, by_name[host])))
    except BrokenPipeError:
        # `adapto logs ... | head`: the reader has what it wanted; not a failure.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
    finally:
        for transport in transports:
            transport.close()
    return code


def _show_snapshot(reads: list[SourceRead], printer: Printer, *, following: bool) -> int:
    """Notes on missing files, then every kept line merged by time; how many files exist."""
    for read in reads:
        where = read.source.where
        if read.state == "missing":
            waiting = "; following waits for it" if following else ""
            printer.note(f"{where}: no log file at {read.source.path}{waiting}")
        elif read.state == "unreadable":
            printer.note(f"{where}: cannot read {read.source.path} (permission denied)")
        elif read.state == "failed":
            printer.note(f"{where}: {read.error}")
        elif read.capped:
            printer.note(f"{where}: searched only the last {MAX_WINDOW >> 20} MiB of "
                         f"{read.source.path}")
    merged = heapq.merge(*[[(moment, i, n, text) for n, (moment, text) in enumerate(r.lines)]
                           for i, r in enumerate(reads)])
    for _, i, _, text in merged:
        printer.line(reads[i].source, text)
    printer.flush()
    return sum(1 for r in reads if r.state == "ok")
