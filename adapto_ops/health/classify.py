"""What kind of failure a check found, in one short line, and what to run next.

The runbook sorts failures into 404, 500, WebSocket, Database and
Authentication; adapto adds TLS, rate-limited (429), network, and for the
on-host checks process, config and disk. A failure is shown as its status
line and a short reason (an HTML page's <title>, a JSON body's error field),
never as the page itself.
"""

from __future__ import annotations

import html
import json
import re
from dataclasses import dataclass
from http import HTTPStatus
from typing import Any

REASON_MAX = 120

_DATABASE = re.compile(r"\b(database|postgres\w*|supabase|psycopg\w*|pgbouncer|sqlstate)\b",
                       re.IGNORECASE)
_AUTH = re.compile(r"\b(invalid api key|jwt\w*|unauthori[sz]ed|forbidden|permission denied)\b",
                   re.IGNORECASE)
_TITLE = re.compile(r"<title[^>]*>(.*?)</title>", re.IGNORECASE | re.DOTALL)
_TAGS = re.compile(r"<[^>]+>")


def trim(text: str, limit: int = REASON_MAX) -> str:
    """One line of at most ``limit`` characters."""
    line = " ".join(text.split())
    return line if len(line) <= limit else line[: limit - 1] + "…"


def body_reason(body: str) -> str:
    """A short reason from a response body: <title> of HTML, the error field of JSON,
    else its first line; never the whole page."""
    text = body.strip()
    if not text:
        return ""
    if text.startswith(("{", "[")):
        try:
            data = json.loads(text)
        except json.JSONDecodeError:
            data = None
        if isinstance(data, dict):
            for key in ("error", "message", "detail", "reason", "status"):
                value = data.get(key)
                if isinstance(value, dict):
                    value = value.get("message") or json.dumps(value)
                if value:
                    return trim(str(value))
            return trim(text)
    if "<" in text and (match := _TITLE.search(text)):
        return trim(html.unescape(match.group(1)))
    if text.lstrip().startswith("<"):
        return trim(html.unescape(_TAGS.sub(" ", text)))
    return trim(text.splitlines()[0])


def status_line(code: int) -> str:
    """``HTTP 502 Bad Gateway``."""
    try:
        return f"HTTP {code} {HTTPStatus(code).phrase}"
    except ValueError:
        return f"HTTP {code}"


def http_output(code: int, body: str) -> str:
    """The status line, then the body's reason when it adds something."""
    line = status_line(code)
    reason = body_reason(body)
    # nginx's error pages say "502 Bad Gateway" in <title>: nothing new.
    if not reason or reason in line:
        return line
    return trim(f"{line}: {reason}", REASON_MAX + 30)


def probe_body(error: str) -> str:
    """The body part of the on-host probe's "HTTP <code> <body>" error text."""
    parts = error.split(" ", 2)
    return parts[2] if len(parts) == 3 else ""


def probe_reason(status: int | None, error: str | None) -> str:
    """An on-host probe's failure as one short line (status line, not the page)."""
    if status:
        return http_output(status, probe_body(error or ""))
    return trim(error or "no answer")


def _health_report(body: str) -> dict[str, Any] | None:
    """A health answer's JSON (it names a database status), else None."""
    try:
        data = json.loads(body)
    except (json.JSONDecodeError, TypeError):
        return None
    return data if isinstance(data, dict) and isinstance(data.get("database"), dict) else None


def http_kind(code: int, body: str = "") -> str:
    """The failure kind of an unexpected HTTP answer."""
    if code == 404:
        return "404"
    if code == 429:
        return "rate-limited"
    report = _health_report(body) if code >= 500 else None
    if report is not None:
        # A health answer says which part fails; its "config" (JWT_SECRET: true, ...)
        # and "database" keys are names, not errors, so the words below would mislead.
        if report["database"].get("status") not in (None, "ok", "not configured"):
            return "database"
        body = json.dumps({k: v for k, v in report.items() if k not in ("config", "database")})
    if code in (401, 403) or (code >= 500 and _AUTH.search(body)):
        return "authentication"
    if code >= 500 and _DATABASE.search(body):
        return "database"
    if code >= 500:
        return "500"
    return "config"  # a redirect or 4xx where 200 was due: the site is set up wrong


def error_kind(message: str) -> str:
    """The kind of a failure without an HTTP answer (an exception's or probe's text)."""
    lower = message.lower()
    if any(word in lower for word in ("ssl", "tls", "certificate", "handshake")):
        return "tls"
    return "network"


@dataclass(frozen=True)
class NextCommands:
    """The commands a failure points to, for one environment and host."""

    env_name: str
    host: str
    many_hosts: bool = False
    sandbox: bool = False

    def _cmd(self, text: str) -> str:
        where = f" --host {self.host}" if self.many_hosts else ""
        return f"adapto {text} -e {self.env_name}{where}"

    def for_kind(self, kind: str, component: str = "") -> str:
        """What to run next for a failure of ``kind`` found by ``component``."""
        if component == "ssh":
            if self.sandbox:
                return f"adapto sandbox up -e {self.env_name}"
            return self._cmd("status")
        if kind == "network" and component.startswith("instance"):
            kind = "process"
        table = {
            "500": "recover backend",
            "process": "recover nginx" if component.startswith("nginx") else "recover backend",
            "database": "recover database",
            "authentication": "logs backend",
            "slow": "logs backend",
            "404": "logs nginx-error",
            "websocket": "logs nginx-error",
            "rate-limited": "logs nginx-access",
            "tls": "recover nginx",
            "network": "recover nginx",
            "config": "recover nginx",
            "disk": "releases",
        }
        return self._cmd(table.get(kind, "logs backend"))
