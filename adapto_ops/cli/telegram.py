"""telegram webhook set|info|delete."""

from __future__ import annotations

from typing import Annotated

import typer

from adapto_ops.cli.common import (
    EnvOpt,
    InventoryOpt,
    JsonObjectOpt,
    VerboseOpt,
    app,
    run_procedure,
    sub_app,
)

telegram_app = sub_app(
    "The platform's Telegram bot. Example: adapto telegram webhook info -e production",
)
webhook_app = sub_app(
    (
        "The bot's webhook: where Telegram posts updates (https://<site>/api/telegram/bot/"
        "webhook). Example: adapto telegram webhook set -e production"
    ),
)
app.add_typer(telegram_app, name="telegram")
telegram_app.add_typer(webhook_app, name="webhook")
DropPendingOpt = Annotated[
    bool, typer.Option("--drop-pending-updates",
                       help="also discard the updates Telegram has not delivered yet")
]


def _webhook(action: str, inventory: str | None, env: str, as_json: bool,
             drop_pending_updates: bool = False) -> None:
    run_procedure("adapto_ops.procedures.telegram", "run_webhook", inventory=inventory,
                  env_name=env, action=action, as_json=as_json,
                  drop_pending_updates=drop_pending_updates)


@webhook_app.command("set")
def telegram_webhook_set(
    env: EnvOpt = ...,  # type: ignore[assignment]
    inventory: InventoryOpt = None,
    drop_pending_updates: DropPendingOpt = False,
    json_output: JsonObjectOpt = False,
    verbose: VerboseOpt = False,
) -> None:
    """Register the webhook URL the inventory gives, with its secret token and allowed_updates.

    Example: adapto telegram webhook set -e production
    """
    _webhook("set", inventory, env, json_output, drop_pending_updates)


@webhook_app.command("info")
def telegram_webhook_info(
    env: EnvOpt = ...,  # type: ignore[assignment]
    inventory: InventoryOpt = None,
    json_output: JsonObjectOpt = False,
    verbose: VerboseOpt = False,
) -> None:
    """Show getWebhookInfo: URL, pending updates, last error and its age, warnings.

    Example: adapto telegram webhook info -e production --json
    """
    _webhook("info", inventory, env, json_output)


@webhook_app.command("delete")
def telegram_webhook_delete(
    env: EnvOpt = ...,  # type: ignore[assignment]
    inventory: InventoryOpt = None,
    drop_pending_updates: DropPendingOpt = False,
    json_output: JsonObjectOpt = False,
    verbose: VerboseOpt = False,
) -> None:
    """Remove the webhook (Telegram then keeps updates for getUpdates).

    Example: adapto telegram webhook delete -e production
    """
    _webhook("delete", inventory, env, json_output, drop_pending_updates)
