"""Structured events from procedures, and the two ways of showing them.

Procedures call ``reporter.emit(Event(...))``; they never print. A person gets
Rich output (a live line per host with the step it is on, and a log line per
finished step); CI gets one JSON object per line with ``--json``.
"""

from __future__ import annotations

import json
import sys
import threading
import time
from dataclasses import asdict, dataclass, field
from typing import Any, Protocol

from adapto_ops.output import console


@dataclass(frozen=True)
class Event:
    """kind: start | progress | ok | fail | info | warn | result."""

    kind: str
    step: str
    message: str = ""
    host: str | None = None
    data: dict[str, Any] = field(default_factory=dict)
    elapsed_s: float | None = None
    ts: float = field(default_factory=time.time)


class Reporter(Protocol):
    def emit(self, event: Event) -> None: ...

    def close(self) -> None: ...


class JsonReporter:
    """One JSON object per line on stdout: easy to grep, jq or parse in CI."""

    def __init__(self, stream: Any = None) -> None:
        self._stream = stream or sys.stdout
        self._lock = threading.Lock()

    def emit(self, event: Event) -> None:
        record = {k: v for k, v in asdict(event).items() if v not in (None, {}, "")}
        with self._lock:
            self._stream.write(json.dumps(record, default=str) + "\n")
            self._stream.flush()

    def close(self) -> None:
        pass


class RichReporter:
    """A live status line per host, and a permanent line per finished step."""

    MARKS = {"ok": "[green]✓[/]", "fail": "[red]✗[/]", "warn": "[yellow]![/]",
             "info": "[blue]·[/]", "result": "[bold]»[/]"}

    def __init__(self) -> None:
        from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

        self.console = console()
        self._progress = Progress(
            SpinnerColumn(), TextColumn("{task.description}"), TimeElapsedColumn(),
            console=self.console, transient=True,
        )
        self._tasks: dict[str, Any] = {}
        self._lock = threading.Lock()
        self._progress.start()

    def emit(self, event: Event) -> None:
        from rich.markup import escape

        host = event.host or "local"
        with self._lock:
            if event.kind == "progress":
                task = self._tasks.get(host)
                if task is not None:
                    self._progress.update(
                        task, description=f"[bold]{escape(host)}[/] {escape(event.step)} "
                                          f"{escape(event.message)}")
                return
            if event.kind == "start":
                text = f"[bold]{escape(host)}[/] {escape(event.step)} {escape(event.message)}"
                if host not in self._tasks:
                    self._tasks[host] = self._progress.add_task(text, total=None)
                else:
                    self._progress.update(self._tasks[host], description=text)
                return
            mark = self.MARKS.get(event.kind, "·")
            took = f" [dim]{event.elapsed_s:.2f}s[/]" if event.elapsed_s is not None else ""
            self._progress.console.print(
                f"{mark} [bold]{escape(host):<10}[/] {escape(event.step):<12} "
                f"{escape(event.message)}{took}"
            )

    def close(self) -> None:
        self._progress.stop()


class ListReporter:
    """Keeps events in memory (tests, and procedures that summarise at the end)."""

    def __init__(self) -> None:
        self.events: list[Event] = []

    def emit(self, event: Event) -> None:
        self.events.append(event)

    def close(self) -> None:
        pass


class Step:
    """Times one step: emits start, then ok (or fail if the block raises)."""

    def __init__(self, reporter: Reporter, host: str | None, step: str, message: str = "") -> None:
        self.reporter, self.host, self.step, self.message = reporter, host, step, message
        self.done_message: str | None = None
        self.data: dict[str, Any] = {}
        self.failed = False  # set by a step that ends without raising but did not succeed

    def __enter__(self) -> Step:
        self.started = time.perf_counter()
        self.reporter.emit(Event("start", self.step, self.message, self.host))
        return self

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> None:
        elapsed = time.perf_counter() - self.started
        if exc is None:
            kind = "fail" if self.failed else "ok"
            self.reporter.emit(Event(kind, self.step, self.done_message or self.message,
                                     self.host, self.data, elapsed))
        else:
            reason = getattr(exc, "message", None) or str(exc) or type(exc).__name__
            self.reporter.emit(Event("fail", self.step, reason, self.host, self.data, elapsed))
