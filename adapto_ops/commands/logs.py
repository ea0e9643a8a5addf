"""Shell commands that read log files on a host: a bounded window, and a follow stream.

Both work in bytes, not lines, so that a follow can start exactly where the
window ended (no line lost or shown twice between the two):

- :func:`read_window` prints a header ``ok SIZE START UTCOFFSET`` then the
  bytes ``[START, SIZE)`` of the file — the last ``max_bytes`` of it as it was
  when its size was read. ``tail -c +N`` seeks and ``head -c`` stops, so a
  1 GB log costs no more than the window. A missing or unreadable file prints
  one word (``missing`` / ``unreadable``) instead.
- :func:`follow` runs ``tail -F`` (by name: it re-opens the file after a
  rename+create rotation and re-reads it after a copytruncate) from a byte
  offset, in the background, and waits on stdin: when adapto closes the SSH
  channel, sshd closes that stdin, ``cat`` returns and the tail is killed, so
  no tail outlives the command on the host — even after a Ctrl-C or a dropped
  connection.
"""

from __future__ import annotations

import shlex
from dataclasses import dataclass

from adapto_ops.render.configs import Target, pm2_apps

q = shlex.quote

WHATS = ("backend", "nginx", "nginx-error", "nginx-access")
WINDOW_END = "adapto-window-end"


@dataclass(frozen=True)
class LogSource:
    """One log file on one host, and how its lines carry their time."""

    host: str
    label: str  # short, for the line prefix: "3001/out", "nginx/access"
    path: str
    format: str  # "pm2" | "nginx-access" | "nginx-error"

    @property
    def where(self) -> str:
        return f"{self.host} {self.label}"


def log_sources(target: Target, what: str, instance: int | None = None) -> list[LogSource]:
    """The log files of ``what`` on one host; PM2's paths come from the ecosystem's own apps."""
    host = target.host
    sources: list[LogSource] = []
    if what == "backend" and "backend" in host.roles:
        for app in pm2_apps(target, cwd=target.layout.current):
            port = int(app["env"]["PORT"])
            if instance is not None and port != instance:
                continue
            sources.append(LogSource(host.name, f"{port}/out", app["out_file"], "pm2"))
            sources.append(LogSource(host.name, f"{port}/err", app["error_file"], "pm2"))
    if what in ("nginx", "nginx-access") and "web" in host.roles:
        sources.append(LogSource(host.name, "nginx/access", target.env.nginx.access_log,
                                 "nginx-access"))
    if what in ("nginx", "nginx-error") and "web" in host.roles:
        sources.append(LogSource(host.name, "nginx/error", target.env.nginx.error_log,
                                 "nginx-error"))
    return sources


def read_window(path: str, max_bytes: int) -> str:
    """Header line, then the file's last ``max_bytes`` bytes (see the module docstring)."""
    f = q(path)
    return (
        f"if [ ! -e {f} ]; then echo missing; exit 0; fi\n"
        f"if [ ! -r {f} ]; then echo unreadable; exit 0; fi\n"
        f"s=$(wc -c < {f}); s=$((s + 0)); start=$((s > {max_bytes} ? s - {max_bytes} : 0))\n"
        'echo "ok $s $start $(date +%z)"\n'
        f'tail -c "+$((start + 1))" -- {f} | head -c "$((s - start))"\n'
        # A line of its own after the bytes: shows whether they ended with a newline,
        # however the output is split into lines on the way, and that none went missing.
        f"printf '\\n{WINDOW_END}\\n'"
    )


@dataclass(frozen=True)
class Window:
    """What :func:`read_window` printed, parsed."""

    state: str  # ok | missing | unreadable | failed (the output was cut short)
    size: int = 0
    start: int = 0
    utc_offset: str = "+0000"
    text: str = ""


def parse_window(stdout: str) -> Window:
    """The header and the bytes; an unexpected header (or a cut output) reads as ``missing``."""
    header, _, text = stdout.partition("\n")
    if header.startswith("ok "):
        if not text.endswith(f"\n{WINDOW_END}\n"):
            return Window("failed")
        text = text.removesuffix(f"\n{WINDOW_END}\n")
    words = header.split()
    if not words or words[0] != "ok" or len(words) != 4:
        return Window(words[0] if words and words[0] == "unreadable" else "missing")
    try:
        return Window("ok", int(words[1]), int(words[2]), words[3], text)
    except ValueError:
        return Window("missing")


def follow(path: str, offset: int | None) -> str:
    """``tail -F`` from byte ``offset`` (None: from the start, for a file not there yet)."""
    begin = 1 if offset is None else offset + 1
    # tail's notices ("file truncated", "has been replaced") go to /dev/null: they are
    # about the mechanism; the lines that follow a rotation are what the reader wants.
    return (f"tail -c +{begin} -F -- {q(path)} 2>/dev/null & p=$!; "
            "cat >/dev/null; kill $p 2>/dev/null")

