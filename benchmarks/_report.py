"""Plain-text output shared by the benchmarks: tables, notes, progress on stderr."""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Callable


def table(title: str, headers: list[str], rows: list[list[str]]) -> None:
    """A titled, left-aligned text table on stdout."""
    widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(headers)]
    line = "  ".join("-" * w for w in widths)
    print(f"\n{title}")
    print("  ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True)))
    print(line)
    for row in rows:
        print("  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)))
    sys.stdout.flush()


def verdict(ok: bool) -> str:
    return "PASS" if ok else "MISS"


def mb(n: float) -> str:
    return f"{n / 1e6:.2f} MB"


def note(text: str) -> None:
    print(f"  {text}", flush=True)


def progress(text: str) -> None:
    print(f"... {text}", file=sys.stderr, flush=True)


def timed_cli(cli: Callable[..., subprocess.CompletedProcess[str]], *args: str) -> float:
    """Seconds ``cli(*args)`` (an `adapto ARGS` runner) took; a failure ends the benchmark."""
    started = time.perf_counter()
    result = cli(*args)
    took = time.perf_counter() - started
    if result.returncode != 0:
        raise SystemExit(f"adapto {' '.join(args)} failed:\n{result.stderr.strip()}")
    return took
