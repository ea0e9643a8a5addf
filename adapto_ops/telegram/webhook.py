"""Pure parts of `adapto telegram webhook`: the URL, the requests, and reading WebhookInfo.

Nothing here talks to the network; :mod:`adapto_ops.telegram.client` does.
Bot API reference: https://core.telegram.org/bots/api#setwebhook,
#getwebhookinfo and #deletewebhook.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from adapto_ops.inventory.model import Environment

SECRET_HEADER = "X-Telegram-Bot-Api-Secret-Token"


@dataclass(frozen=True)
class BotCall:
    """One Bot API method call: its name and JSON parameters (may hold secrets: never print)."""

    method: str
    params: dict[str, Any]


def webhook_url(env: Environment) -> str:
    """https://<canonical server name>[:https_port]<webhook_path>, as nginx serves it."""
    port = "" if env.nginx.https_port == 443 else f":{env.nginx.https_port}"
    return f"https://{env.nginx.canonical_name}{port}{env.telegram.webhook_path}"


def set_webhook_call(env: Environment, secret_token: str, *,
                     drop_pending_updates: bool = False) -> BotCall:
    """setWebhook with the inventory's URL, allowed_updates and the webhook's secret token."""
    params: dict[str, Any] = {
        "url": webhook_url(env),
        "secret_token": secret_token,
        # Sent even when it is the default: Telegram keeps the previous list otherwise.
        "allowed_updates": list(env.telegram.allowed_updates),
    }
    if env.telegram.max_connections is not None:
        params["max_connections"] = env.telegram.max_connections
    if drop_pending_updates:
        # Only on request: pending updates are users' messages the bot has not answered.
        params["drop_pending_updates"] = True
    return BotCall("setWebhook", params)


def delete_webhook_call(*, drop_pending_updates: bool = False) -> BotCall:
    """deleteWebhook (pending updates are kept unless asked)."""
    return BotCall("deleteWebhook", {"drop_pending_updates": True} if drop_pending_updates else {})


def get_webhook_info_call() -> BotCall:
    """getWebhookInfo: no parameters."""
    return BotCall("getWebhookInfo", {})


def when(unix: int | float | None, now: float | None = None) -> str | None:
    """A Bot API date as 'YYYY-MM-DD HH:MM:SS UTC (N min ago)'; None when unset (0)."""
    if not unix:
        return None
    now = time.time() if now is None else now
    stamp = time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(unix))
    return f"{stamp} ({age(now - float(unix))})"


def age(seconds: float) -> str:
    """A duration in the largest whole unit: '42 s ago', '5 min ago', '3 h ago', '2 d ago'."""
    seconds = max(0.0, seconds)
    for unit, size in (("d", 86400), ("h", 3600), ("min", 60)):
        if seconds >= size:
            return f"{int(seconds // size)} {unit} ago"
    return f"{int(seconds)} s ago"


def describe_info(info: dict[str, Any], env: Environment,
                  now: float | None = None) -> dict[str, Any]:
    """WebhookInfo reduced to what an operator reads, with the inventory's expectations.

    ``warnings`` says when Telegram delivers elsewhere, nowhere, or other updates
    than the inventory asks for.
    """
    expected = webhook_url(env)
    url = str(info.get("url") or "")
    allowed = info.get("allowed_updates")
    warnings: list[str] = []
    if not url:
        warnings.append(f"no webhook is set; the inventory gives {expected} "
                        f"(adapto telegram webhook set -e ENV)")
    elif url != expected:
        warnings.append(f"the webhook is {url} but the inventory gives {expected} "
                        f"(adapto telegram webhook set -e ENV)")
    # Telegram omits allowed_updates when every type but a few is delivered (its default).
    wanted = list(env.telegram.allowed_updates)
    if url and allowed is not None and sorted(allowed) != sorted(wanted):
        warnings.append(f"allowed_updates is {allowed} but the inventory gives {wanted}")
    return {
        "url": url,
        "expected_url": expected,
        "pending_update_count": int(info.get("pending_update_count") or 0),
        "last_error_message": info.get("last_error_message"),
        "last_error_date": info.get("last_error_date"),
        "last_error": when(info.get("last_error_date"), now),
        "max_connections": info.get("max_connections"),
        "allowed_updates": allowed,
        "ip_address": info.get("ip_address"),
        "warnings": warnings,
    }


def info_lines(described: dict[str, Any]) -> list[str]:
    """The human view of :func:`describe_info`, one field per line."""
    allowed = described["allowed_updates"]
    error = described["last_error_message"]
    last_error = f"{error} at {described['last_error'] or '(date unknown)'}" if error else "(none)"
    lines = [
        f"url:                  {described['url'] or '(none)'}",
        f"pending_update_count: {described['pending_update_count']}",
        f"last_error:           {last_error}",
        f"max_connections:      {described['max_connections'] or '(default)'}",
        f"allowed_updates:      {', '.join(allowed) if allowed else '(Telegram default)'}",
    ]
    if described["ip_address"]:
        lines.append(f"ip_address:           {described['ip_address']}")
    return lines + [f"warning: {w}" for w in described["warnings"]]
