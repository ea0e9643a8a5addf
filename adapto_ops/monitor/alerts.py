"""Alert messages and the channels that carry them: the Telegram Bot API and a JSON webhook.

A bot token sits in the Telegram URL's path and a webhook URL often carries
one too, so neither URL is ever printed: errors name the API base or the
webhook's host only, and every secret value is scrubbed from any text that
leaves this module.
"""

from __future__ import annotations

import calendar
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol
from urllib.parse import urlsplit

from adapto_ops.errors import AdaptoError
from adapto_ops.health.model import CheckResult
from adapto_ops.inventory.secrets import maskable_values
from adapto_ops.monitor.state import Incident

TELEGRAM_MAX_CHARS = 4096  # sendMessage's limit for `text`
MAX_RETRY_AFTER_S = 30.0  # longer waits are left to the next round's retry


class AlertFailed(AdaptoError):
    """An alert was not delivered (the monitor keeps it and tries again next round)."""


@dataclass(frozen=True)
class Notice:
    """One message: an incident opened ("alert") or ended ("resolved")."""

    kind: str
    env: str
    host: str
    text: str
    data: dict[str, Any] = field(default_factory=dict)


class Notifier(Protocol):
    name: str

    def send(self, notice: Notice) -> None: ...


def _utc(ts: float) -> str:
    return time.strftime("%H:%M:%S UTC", time.gmtime(ts))


def _parse_time(value: Any) -> float | None:
    try:
        return float(calendar.timegm(time.strptime(str(value), "%Y-%m-%dT%H:%M:%SZ")))
    except ValueError:
        return None


def deploy_note(deploy: dict[str, Any] | None, first_failure_at: float, window_s: float,
                env: str) -> str | None:
    """When the failure began within ``window_s`` after a deploy: which release, how to undo it."""
    if not deploy or not deploy.get("release"):
        return None
    finished = _parse_time(deploy.get("time"))
    if finished is None:
        return None
    # A deploy's history line is written when it ends: a failure that started
    # during the deploy's own restart (slightly before) still belongs to it.
    after = first_failure_at - finished
    if not -120 <= after <= window_s:
        return None
    minutes = max(0, round(after / 60))
    action = deploy.get("action") or "deploy"
    return (f"Started {minutes} min after {action} of release {deploy['release']} "
            f"(at {_utc(finished)}). If it broke this, roll it back: adapto rollback -e {env}")


def _line(result: CheckResult) -> str:
    kind = f" [{result.kind}]" if result.kind else ""
    output = f": {result.output}" if result.output else ""
    hint = f" -> {result.next_command}" if result.next_command else ""
    return f"- {result.name}{output}{kind}{hint}"


def alert_notice(env: str, incident: Incident, *, deploy: str | None,
                 recovering: list[str]) -> Notice:
    """The one message sent when an incident opens."""
    failing = list(incident.failing.values())
    lines = [f"ALERT {env}: {incident.host}: {len(failing)} check(s) failing since "
             f"{_utc(incident.first_failure_at)}"]
    lines += [_line(r) for r in failing]
    if deploy:
        lines.append(deploy)
    if recovering:
        lines.append("auto-recover: " + ", ".join(f"adapto recover {w} -e {env}"
                                                  for w in recovering))
    return Notice("alert", env, incident.host, "\n".join(lines), {
        "group": incident.group, "first_failure_at": incident.first_failure_at,
        "checks": [{"check": r.key, "name": r.name, "status": r.status, "kind": r.kind,
                    "output": r.output, "next_command": r.next_command} for r in failing],
        "deploy": deploy, "auto_recover": recovering,
    })


def resolved_notice(env: str, incident: Incident) -> Notice:
    """The one message sent when the incident's last failing check has passed enough rounds."""
    names = ", ".join(r.name for r in incident.failing.values())
    took = incident.duration_s or 0.0
    text = f"RESOLVED {env}: {incident.host}: {names} healthy again after {took:.0f} s"
    if incident.recover_tried:
        text += " (auto-recover: " + ", ".join(
            f"{w} {'ended healthy' if ok else 'did not heal'}"
            for w, ok in incident.recover_tried.items()) + ")"
    return Notice("resolved", env, incident.host, text, {
        "group": incident.group, "duration_s": round(took, 1),
        "checks": [r.key for r in incident.failing.values()],
        "auto_recover": dict(incident.recover_tried),
    })


def scrubber(secrets: list[str]) -> Callable[[str], str]:
    """A function that replaces every secret value in a text with ****."""
    values = maskable_values(secrets)  # a URL's password alone too

    def scrub(text: str) -> str:
        for value in values:
            text = text.replace(value, "****")
        return text

    return scrub


class TelegramNotifier:
    """sendMessage of the Telegram Bot API (https://core.telegram.org/bots/api#sendmessage)."""

    name = "telegram"

    def __init__(self, token: str, chat_id: str, *, api_base: str = "https://api.telegram.org",
                 timeout_s: float = 10.0, client: Any = None,
                 sleep: Callable[[float], None] = time.sleep, max_attempts: int = 3) -> None:
        import httpx

        self._token, self._chat_id = token, chat_id
        self.api_base = api_base.rstrip("/")
        self._client = client or httpx.Client(timeout=timeout_s, trust_env=False)
        self._sleep, self._attempts = sleep, max_attempts
        self._scrub = scrubber([token, chat_id])

    def send(self, notice: Notice) -> None:
        import httpx

        url = f"{self.api_base}/bot{self._token}/sendMessage"
        text = notice.text if len(notice.text) <= TELEGRAM_MAX_CHARS \
            else notice.text[: TELEGRAM_MAX_CHARS - 1] + "…"
        payload = {"chat_id": self._chat_id, "text": text, "disable_web_page_preview": True}
        for attempt in range(1, self._attempts + 1):
            try:
                response = self._client.post(url, json=payload)
            except httpx.HTTPError as exc:
                raise AlertFailed(f"telegram ({self.api_base}): {type(exc).__name__}: "
                                  f"{self._scrub(str(exc))}") from None
            try:
                body = response.json()
            except ValueError:
                body = {}
            if not isinstance(body, dict):
                body = {}
            if response.status_code == 200 and body.get("ok") is True:
                return
            retry_after = (body.get("parameters") or {}).get("retry_after")
            if response.status_code == 429 and attempt < self._attempts:
                # Flood control: Telegram says how long to wait before the next request.
                self._sleep(min(float(retry_after or 1), MAX_RETRY_AFTER_S))
                continue
            reason = body.get("description") or response.reason_phrase or "no description"
            raise AlertFailed(f"telegram ({self.api_base}): HTTP {response.status_code}: "
                              f"{self._scrub(str(reason))[:200]}")
        raise AlertFailed(f"telegram ({self.api_base}): still rate-limited after "
                          f"{self._attempts} attempts")


class WebhookNotifier:
    """POSTs the notice as JSON; any 2xx answer counts as delivered."""

    name = "webhook"

    def __init__(self, url: str, *, timeout_s: float = 10.0, client: Any = None) -> None:
        import httpx

        self._url = url
        parts = urlsplit(url)
        self.where = f"{parts.scheme}://{parts.hostname}" + (f":{parts.port}" if parts.port
                                                              else "")
        self._client = client or httpx.Client(timeout=timeout_s, trust_env=False)
        self._scrub = scrubber([url, parts.path, parts.query, parts.password or ""])

    def send(self, notice: Notice) -> None:
        import httpx

        payload = {"event": notice.kind, "env": notice.env, "host": notice.host,
                   "text": notice.text, **notice.data}
        try:
            response = self._client.post(self._url, json=payload)
        except httpx.HTTPError as exc:
            raise AlertFailed(f"webhook ({self.where}): {type(exc).__name__}: "
                              f"{self._scrub(str(exc))}") from None
        if not 200 <= response.status_code < 300:
            raise AlertFailed(f"webhook ({self.where}): HTTP {response.status_code} "
                              f"{response.reason_phrase}")


class Outbox:
    """Sends notices; keeps undelivered ones (up to ``limit``) and retries them first."""

    def __init__(self, notifier: Notifier | None, limit: int = 50) -> None:
        self.notifier, self.limit = notifier, limit
        self.pending: list[Notice] = []
        self.sent: list[Notice] = []

    def deliver(self, notices: list[Notice]) -> list[str]:
        """Send the pending notices, then ``notices``; return one error line per failure."""
        if self.notifier is None:
            return []
        queue, self.pending = [*self.pending, *notices], []
        for index, notice in enumerate(queue):
            try:
                self.notifier.send(notice)
            except AlertFailed as exc:
                # The channel is down: keep this and the rest, in order, for the next round.
                self.pending = queue[index:][-self.limit:]
                return [exc.message]
            self.sent.append(notice)
        return []
