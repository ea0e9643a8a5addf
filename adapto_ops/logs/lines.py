"""Pure text work on log lines: times, --since, --grep, masking, prefixes.

Formats whose time adapto reads:

- PM2 (``time: true``, ``log_date_format: 'YYYY-MM-DD HH:mm:ss Z'``):
  ``2026-11-30 10:36:06 +00:00: text``; PM2's default ``2026-11-30T10:36:06: text``
  (no offset: the server's local time) is read too.
- nginx access (``$time_local``): ``... [30/Nov/2026:10:36:06 +0000] "GET ...``.
- nginx error: ``2026/11/30 10:36:06 [warn] ...`` in the server's local time,
  so the host's UTC offset (``date +%z``, read with the window) is applied.

A line without a time (a traceback, a wrapped message) takes the decision of
the line before it in the same file: with ``--since`` a stack trace stays with
the error that opened it.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta, timezone

from adapto_ops.errors import AdaptoError
from adapto_ops.inventory.secrets import mask, maskable_values

_SINCE_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
_MONTHS = {m: i for i, m in enumerate(
    ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"), 1)}

_PM2 = re.compile(r"(\d{4})-(\d\d)-(\d\d)[ T](\d\d):(\d\d):(\d\d)(?: ?([+-]\d\d:?\d\d|Z))?: ")
_ACCESS = re.compile(r"\[(\d\d)/([A-Z][a-z]{2})/(\d{4}):(\d\d):(\d\d):(\d\d) ([+-]\d{4})\]")
_ERROR = re.compile(r"(\d{4})/(\d\d)/(\d\d) (\d\d):(\d\d):(\d\d) ")


def parse_since(text: str, now: datetime | None = None) -> datetime:
    """``10m``, ``2h``, ``1d``, ``30s``, ``1w`` ago, or an ISO time (no offset: UTC)."""
    now = now or datetime.now(UTC)
    value = text.strip()
    relative = re.fullmatch(r"(\d+)\s*([smhdw])", value)
    if relative:
        return now - timedelta(seconds=int(relative[1]) * _SINCE_UNITS[relative[2]])
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        raise AdaptoError(f"--since {text!r}: expected a duration such as 10m, 2h, 1d or an "
                          "ISO time such as 2026-11-30T10:00 (UTC unless it has an offset)"
                          ) from None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def compile_grep(text: str) -> re.Pattern[str]:
    """A Python regular expression, or a one-line error (exit 2) saying what is wrong."""
    try:
        return re.compile(text)
    except re.error as exc:
        raise AdaptoError(f"--grep {text!r}: not a valid regular expression: {exc}") from None


def offset_zone(offset: str) -> timezone:
    """``+0100`` / ``-05:30`` -> a fixed timezone; anything else is UTC."""
    match = re.fullmatch(r"([+-])(\d\d):?(\d\d)", offset.strip())
    if not match:
        return UTC
    delta = timedelta(hours=int(match[2]), minutes=int(match[3]))
    return timezone(delta if match[1] == "+" else -delta)


def line_time(line: str, fmt: str, local: timezone = UTC) -> datetime | None:
    """When the line was written, in UTC, or None if it carries no time of ``fmt``."""
    try:
        if fmt == "pm2":
            m = _PM2.match(line)
            if not m:
                return None
            zone = local if m[7] is None else offset_zone("+0000" if m[7] == "Z" else m[7])
            return datetime(*map(int, m.groups()[:6]), tzinfo=zone).astimezone(UTC)
        if fmt == "nginx-access":
            m = _ACCESS.search(line)
            if not m or m[2] not in _MONTHS:
                return None
            return datetime(int(m[3]), _MONTHS[m[2]], int(m[1]), int(m[4]), int(m[5]),
                            int(m[6]), tzinfo=offset_zone(m[7])).astimezone(UTC)
        if fmt == "nginx-error":
            m = _ERROR.match(line)
            if not m:
                return None
            return datetime(*map(int, m.groups()), tzinfo=local).astimezone(UTC)
    except ValueError:  # 2026-13-45 and the like: not a time after all
        return None
    return None


class Masker:
    """Replaces every known secret value in a line by :func:`mask` of it, in one pass."""

    def __init__(self, values: Iterable[str]) -> None:
        # Longest first, so a value that contains another is masked whole.
        secrets = maskable_values(values)  # a URL's password alone too
        self._pattern = re.compile("|".join(map(re.escape, secrets))) if secrets else None

    def __call__(self, line: str) -> str:
        if self._pattern is None:
            return line
        return self._pattern.sub(lambda m: mask(m[0]), line)


class LineFilter:
    """--grep and --since for one file; remembers the last time seen (for merging)."""

    def __init__(self, fmt: str, *, grep: re.Pattern[str] | None, since: datetime | None,
                 local: timezone = UTC) -> None:
        self.fmt, self.grep, self.since, self.local = fmt, grep, since, local
        self.last_time: datetime | None = None
        self.saw_older = False  # a line before --since went by: nothing earlier can match
        self._recent = since is None  # an untimed first line counts as old when --since is set

    def accept(self, line: str) -> bool:
        """Whether to show ``line`` (already masked, so --grep cannot find a secret)."""
        if self.since is None:
            # Cheap path: only the lines shown have their time read (for merging files).
            if self.grep is not None and self.grep.search(line) is None:
                return False
            self.last_time = line_time(line, self.fmt, self.local) or self.last_time
            return True
        moment = line_time(line, self.fmt, self.local)
        if moment is not None:
            self.last_time = moment
            self._recent = moment >= self.since
            self.saw_older = self.saw_older or not self._recent
        if not self._recent:
            return False
        return self.grep is None or self.grep.search(line) is not None


def prefix_width(labels: Iterable[str]) -> int:
    """The column the text starts at, so lines from every source line up."""
    return max((len(label) for label in labels), default=0)


def prefixed(label: str | None, width: int, line: str) -> str:
    """``sandbox1 3001/out   | text``, or the bare line when there is one source."""
    return line if label is None else f"{label:<{width}} | {line}"
