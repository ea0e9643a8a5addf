"""`adapto logs --follow`: every file on an SSH channel of its own, one queue, until Ctrl-C.

One thread per file reads its :class:`~adapto_ops.remote.LineStream` and puts
lines on one queue; the main thread filters, masks and prints them, so lines
from different hosts never interleave mid-line. Ctrl-C (SIGINT) ends the
wait on the queue: every stream is closed, which closes each remote tail's
stdin and so kills it (see :func:`adapto_ops.commands.logs.follow`); SIGTERM
does the same. Exit 0:
Ctrl-C is how a follow normally ends; 1 if a host's stream ended by itself
(the connection was lost).
"""

from __future__ import annotations

import queue
import signal
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from adapto_ops.commands import logs as cmd
from adapto_ops.errors import EXIT_FAILED, EXIT_OK, AdaptoError

if TYPE_CHECKING:
    from adapto_ops.logs.lines import Masker
    from adapto_ops.procedures.logs import Printer, SourceRead
    from adapto_ops.remote import LineStream

_END = None  # what a reader thread puts on the queue when its stream ends
CHANNELS_PER_CONNECTION = 8


def _pump(index: int, stream: LineStream, lines: queue.Queue[tuple[int, str | None]]) -> None:
    for line in stream:
        lines.put((index, line))
    lines.put((index, _END))


class Channels:
    """Hands out SSH connections for streams: at most ``per_connection`` channels on each.

    OpenSSH allows 10 sessions per connection by default (MaxSessions), and the
    long-lived shell holds one; a host with many instances (two files each) gets
    a further connection for every ``per_connection`` files.
    """

    def __init__(self, transports: list[Any], connect: Callable[[str], Any],
                 per_connection: int = CHANNELS_PER_CONNECTION) -> None:
        self._current = {t.host.name: t for t in transports}
        self._used = dict.fromkeys(self._current, 0)
        self._connect, self._per = connect, per_connection
        self.opened: list[Any] = []  # the extra connections, closed by close()

    def stream(self, host: str, command: str) -> LineStream:
        if self._used[host] >= self._per:
            self._current[host] = self._connect(host)
            self.opened.append(self._current[host])
            self._used[host] = 0
        self._used[host] += 1
        return self._current[host].stream(command)

    def close(self) -> None:
        for transport in self.opened:
            transport.close()


def follow(transports: list[Any], reads: list[SourceRead], masker: Masker,
           printer: Printer, connect: Callable[[str], Any]) -> int:
    """Stream new lines of every file that exists or may appear; returns the exit code.

    ``connect(host)`` opens one more connection to a host (see :class:`Channels`).
    """
    channels = Channels(transports, connect)
    followed = [r for r in reads if r.state in ("ok", "missing")]
    lines: queue.Queue[tuple[int, str | None]] = queue.Queue()
    streams: list[LineStream] = []
    code = EXIT_OK
    # SIGTERM (a supervisor, `timeout`) ends a follow as Ctrl-C does: streams closed, exit 0.
    in_main = threading.current_thread() is threading.main_thread()
    previous = signal.signal(signal.SIGTERM, _interrupt) if in_main else None
    try:
        for index, read in enumerate(followed):
            try:
                stream = channels.stream(read.source.host,
                                         cmd.follow(read.source.path, read.offset))
            except AdaptoError as exc:
                printer.note(f"error: {exc.message}")
                code = EXIT_FAILED
                continue
            streams.append(stream)
            threading.Thread(target=_pump, args=(index, stream, lines), daemon=True,
                             name=f"follow {read.source.where}").start()
        if not followed:
            printer.note("error: no log file to follow")
            return EXIT_FAILED
        live = len(streams)
        while live:
            try:
                index, line = lines.get(timeout=0.5)
            except queue.Empty:
                continue
            read = followed[index]
            if line is _END:
                live -= 1
                printer.note(f"error: {read.source.where}: the stream ended (connection lost?)")
                code = EXIT_FAILED
                continue
            if read.partial:  # the window ended inside this line: show it whole
                line, read.partial = read.partial + line, ""
            shown = masker(line)
            if read.filter.accept(shown):
                printer.line(read.source, shown)
                if lines.empty():
                    printer.flush()
    except KeyboardInterrupt:
        pass  # Ctrl-C is how a follow ends
    finally:
        if in_main:
            signal.signal(signal.SIGTERM, previous)
        for stream in streams:
            stream.close()
        channels.close()
    return code


def _interrupt(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt
