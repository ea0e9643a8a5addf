"""`adapto telegram webhook set|info|delete`: the bot's webhook, as the inventory describes it.

The URL comes from the environment's nginx (canonical name and HTTPS port)
and telegram.webhook_path; the bot token and the webhook's secret token come
from the secrets. Neither secret is ever printed: the client scrubs them from
every error, and the output shows only names and the URL.
"""

from __future__ import annotations

import json
from typing import Any

from adapto_ops.errors import EXIT_OK, SecretError
from adapto_ops.selection import Selection, select
from adapto_ops.telegram.client import BotApi
from adapto_ops.telegram.webhook import (
    delete_webhook_call,
    describe_info,
    get_webhook_info_call,
    info_lines,
    set_webhook_call,
    webhook_url,
)

ACTIONS = ("set", "info", "delete")


def _secret(selection: Selection, name: str, what: str) -> str:
    """A secret's value, or one line naming it and where it would come from (exit 2)."""
    env = selection.env
    if name not in env.secrets.names:
        raise SecretError(
            f"{selection.loaded.path}: environment {selection.env_name!r}: {name} ({what}) "
            f"is not in secrets.names; add it there and give it a value")
    values = selection.secrets()
    value = values.values.get(name)
    if not value:
        raise SecretError(
            f"environment {selection.env_name!r}: secret {name} ({what}) is not set; "
            f"export it or add it to {selection.secrets_file}")
    return value


def _emit(as_json: bool, record: dict[str, Any], lines: list[str]) -> None:
    if as_json:
        print(json.dumps(record, default=str), flush=True)
    else:
        print("\n".join(lines), flush=True)


def run_webhook(*, inventory: str | None, env_name: str, action: str, as_json: bool = False,
                drop_pending_updates: bool = False) -> int:
    """Run one webhook action against the Bot API; 0 done, 1 Telegram refused (raised)."""
    selection = select(inventory, env_name)
    env = selection.env
    token = _secret(selection, env.telegram.token_secret, "the bot token")
    webhook_secret = (_secret(selection, env.telegram.webhook_secret, "the webhook's secret token")
                      if action == "set" else "")
    api = BotApi(token, env.telegram.api_base, timeout_s=env.telegram.timeout_s,
                 secrets=(webhook_secret,))
    try:
        if action == "set":
            call = set_webhook_call(env, webhook_secret, drop_pending_updates=drop_pending_updates)
            api.call(call)
            allowed = call.params["allowed_updates"]
            _emit(as_json, {"action": "set", "env": env_name, "ok": True, "url": call.params["url"],
                            "allowed_updates": allowed,
                            "secret_token": env.telegram.webhook_secret,
                            "drop_pending_updates": drop_pending_updates},
                  [f"webhook set: {call.params['url']}",
                   f"allowed_updates: {', '.join(allowed)}; secret token: "
                   f"{env.telegram.webhook_secret}"
                   + ("; pending updates dropped" if drop_pending_updates else "")])
        elif action == "info":
            info = api.call(get_webhook_info_call())
            described = describe_info(info if isinstance(info, dict) else {}, env)
            _emit(as_json, {"action": "info", "env": env_name, **described},
                  info_lines(described))
        else:
            api.call(delete_webhook_call(drop_pending_updates=drop_pending_updates))
            _emit(as_json, {"action": "delete", "env": env_name, "ok": True,
                            "drop_pending_updates": drop_pending_updates},
                  ["webhook deleted" + (" (pending updates dropped)" if drop_pending_updates
                                        else f"; set it again: adapto telegram webhook set "
                                             f"-e {env_name}")])
    finally:
        api.close()
    return EXIT_OK


__all__ = ["ACTIONS", "run_webhook", "webhook_url"]
