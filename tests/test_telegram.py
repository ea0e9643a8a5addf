"""`adapto telegram webhook set|info|delete` against the fake Bot API on loopback.

The CLI runs as a user runs it (a subprocess) with a known token, so every
test can grep all of its output for the token and the webhook secret.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from adapto_ops.errors import InventoryError
from adapto_ops.inventory.loader import parse_inventory
from adapto_ops.telegram.client import BotApi, BotApiError
from adapto_ops.telegram.webhook import (
    age,
    describe_info,
    get_webhook_info_call,
    set_webhook_call,
    webhook_url,
)
from tests.e2e_support import REPO, Cli, adapto, said
from tests.fake_telegram import FakeTelegram

TOKEN = "7301234567:AAFake-Token_known4grep"
SECRET = "whsec_Known-Secret_4grep"
ENV = "bot"


def env_data(api_base: str, **telegram: Any) -> dict[str, Any]:
    """The repository's sandbox environment with a telegram section pointing at ``api_base``."""
    data = yaml.safe_load((REPO / "inventory.yaml").read_text(encoding="utf-8"))
    env = data["environments"]["sandbox"]
    env["nginx"]["server_names"] = ["bot.adapto.test"]
    env["secrets"]["names"] += ["TELEGRAM_BOT_TOKEN", "TELEGRAM_WEBHOOK_SECRET"]
    env["telegram"] = {"api_base": api_base, **telegram}
    data["environments"] = {ENV: env}
    return data


def write_inventory(base: Path, data: dict[str, Any], secrets: dict[str, str]) -> Path:
    secrets_file = base / "secrets.env"
    secrets_file.write_text("".join(f"{k}={v}\n" for k, v in secrets.items()))
    secrets_file.chmod(0o600)  # a readable secrets file earns a warning line on stderr
    data["environments"][ENV]["secrets"]["file"] = str(secrets_file)
    path = base / "inventory.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
    return path


@pytest.fixture
def fake() -> Iterator[FakeTelegram]:
    server = FakeTelegram(TOKEN).start()
    yield server
    server.stop()


@pytest.fixture
def inventory(tmp_path: Path, fake: FakeTelegram) -> Path:
    return write_inventory(tmp_path, env_data(fake.api_base),
                           {"TELEGRAM_BOT_TOKEN": TOKEN, "TELEGRAM_WEBHOOK_SECRET": SECRET})


def webhook(inventory: Path, *args: str) -> Cli:
    result = adapto("telegram", "webhook", *args, "-e", ENV, "-i", str(inventory), timeout=60)
    everything = result.stdout + result.stderr
    assert TOKEN not in everything and TOKEN.split(":")[1] not in everything, said(result)
    assert SECRET not in everything, said(result)
    if "--verbose" not in args:  # --verbose prints tracebacks on purpose (token-free too)
        assert "Traceback" not in everything, said(result)
    return result


EXPECTED_URL = "https://bot.adapto.test:8443/api/telegram/bot/webhook"


def test_set_registers_url_secret_and_allowed_updates_then_info_shows_it(
        inventory: Path, fake: FakeTelegram) -> None:
    fake.pending_update_count = 3
    done = webhook(inventory, "set")
    assert done.returncode == 0, said(done)
    assert EXPECTED_URL in done.stdout
    assert fake.webhook == {"url": EXPECTED_URL, "secret_token": SECRET,
                            "allowed_updates": ["message"], "max_connections": 40}
    # Pending updates are users' messages: kept unless asked.
    assert "drop_pending_updates" not in fake.calls[-1][1] and fake.pending_update_count == 3

    fake.last_error = (int(time.time()) - 300, "Wrong response from the webhook: 502 Bad Gateway")
    info = webhook(inventory, "info", "--json")
    assert info.returncode == 0, said(info)
    shown = json.loads(info.stdout)
    assert shown["url"] == EXPECTED_URL and shown["warnings"] == []
    assert shown["pending_update_count"] == 3 and shown["max_connections"] == 40
    assert shown["allowed_updates"] == ["message"]
    assert shown["last_error_message"].startswith("Wrong response")
    assert shown["last_error"].endswith("(5 min ago)"), shown["last_error"]

    human = webhook(inventory, "info")
    assert "pending_update_count: 3" in human.stdout
    assert "502 Bad Gateway at " in human.stdout and "UTC (5 min ago)" in human.stdout


def test_set_drops_pending_updates_only_on_request_and_uses_the_inventory_list(
        tmp_path: Path, fake: FakeTelegram) -> None:
    data = env_data(fake.api_base, allowed_updates=["message", "callback_query"],
                    max_connections=5)
    inventory = write_inventory(tmp_path, data, {"TELEGRAM_BOT_TOKEN": TOKEN,
                                                 "TELEGRAM_WEBHOOK_SECRET": SECRET})
    fake.pending_update_count = 7
    done = webhook(inventory, "set", "--drop-pending-updates", "--json")
    assert done.returncode == 0, said(done)
    assert json.loads(done.stdout)["drop_pending_updates"] is True
    method, params = fake.calls[-1]
    assert method == "setWebhook" and params["drop_pending_updates"] is True
    assert fake.webhook["allowed_updates"] == ["message", "callback_query"]
    assert fake.webhook["max_connections"] == 5 and fake.pending_update_count == 0


def test_info_warns_when_telegram_delivers_elsewhere(inventory: Path, fake: FakeTelegram) -> None:
    fake.webhook = {"url": "https://old.example.com/hook", "secret_token": "x",
                    "allowed_updates": ["message"], "max_connections": 40}
    info = webhook(inventory, "info")
    assert info.returncode == 0, said(info)
    assert "url:                  https://old.example.com/hook" in info.stdout
    assert f"warning: the webhook is https://old.example.com/hook but the inventory gives " \
           f"{EXPECTED_URL}" in info.stdout


def test_delete_removes_the_webhook(inventory: Path, fake: FakeTelegram) -> None:
    assert webhook(inventory, "set").returncode == 0
    done = webhook(inventory, "delete")
    assert done.returncode == 0, said(done)
    assert fake.webhook == {} and fake.calls[-1] == ("deleteWebhook", {})
    info = webhook(inventory, "info", "--json")
    shown = json.loads(info.stdout)
    assert shown["url"] == "" and "no webhook is set" in shown["warnings"][0]


def test_api_error_is_one_line_exit_1(inventory: Path, fake: FakeTelegram) -> None:
    fake.scripted = [(500, None)]
    failed = webhook(inventory, "info")
    assert failed.returncode == 1, said(failed)
    assert failed.stderr.strip().count("\n") == 0 and failed.stdout == ""
    assert "Bot API getWebhookInfo at http://127.0.0.1:" in failed.stderr
    assert "error 500: Internal Server Error" in failed.stderr


def test_telegram_refusal_of_the_url_is_shown(tmp_path: Path, fake: FakeTelegram) -> None:
    data = env_data(fake.api_base)
    inventory = write_inventory(tmp_path, data, {"TELEGRAM_BOT_TOKEN": TOKEN,
                                                 "TELEGRAM_WEBHOOK_SECRET": "bad secret!"})
    failed = adapto("telegram", "webhook", "set", "-e", ENV, "-i", str(inventory))
    assert failed.returncode == 1, said(failed)
    assert "error 400: Bad Request: secret token contains unallowed characters" in failed.stderr
    assert TOKEN not in failed.stderr + failed.stdout
    assert "bad secret!" not in failed.stderr + failed.stdout
    assert fake.webhook == {}


def test_wrong_token_and_unreachable_api_never_show_the_token(
        tmp_path: Path, fake: FakeTelegram) -> None:
    wrong = write_inventory(tmp_path, env_data(fake.api_base),
                            {"TELEGRAM_BOT_TOKEN": TOKEN + "x", "TELEGRAM_WEBHOOK_SECRET": SECRET})
    refused = webhook(wrong, "set")
    assert refused.returncode == 1 and "error 401: Unauthorized" in refused.stderr, said(refused)
    assert "(the bot token is wrong or revoked)" in refused.stderr
    down = write_inventory(tmp_path, env_data("http://127.0.0.1:9"),
                           {"TELEGRAM_BOT_TOKEN": TOKEN, "TELEGRAM_WEBHOOK_SECRET": SECRET})
    unreachable = webhook(down, "delete", "--verbose")
    assert unreachable.returncode == 1, said(unreachable)
    assert "Bot API deleteWebhook at http://127.0.0.1:9:" in unreachable.stderr


def test_missing_token_is_one_line_exit_2_and_calls_nothing(
        tmp_path: Path, fake: FakeTelegram) -> None:
    inventory = write_inventory(tmp_path, env_data(fake.api_base),
                                {"TELEGRAM_WEBHOOK_SECRET": SECRET})
    missing = webhook(inventory, "info")
    assert missing.returncode == 2, said(missing)
    assert missing.stderr.count("\n") == 1
    assert "secret TELEGRAM_BOT_TOKEN (the bot token) is not set" in missing.stderr
    no_secret = write_inventory(tmp_path, env_data(fake.api_base),
                                {"TELEGRAM_BOT_TOKEN": TOKEN})
    assert webhook(no_secret, "set").returncode == 2
    assert fake.calls == []


def test_inventory_telegram_section_needs_its_secrets_declared(tmp_path: Path) -> None:
    data = env_data("https://api.telegram.org")
    data["environments"][ENV]["secrets"]["names"].remove("TELEGRAM_WEBHOOK_SECRET")
    with pytest.raises(InventoryError) as error:
        parse_inventory(yaml.safe_dump(data), tmp_path / "inventory.yaml")
    assert "TELEGRAM_WEBHOOK_SECRET is the bot's webhook secret but not a secret" \
        in str(error.value)
    data = env_data("ftp://x", allowed_updates=["mesage"])
    with pytest.raises(InventoryError) as bad:
        parse_inventory(yaml.safe_dump(data), tmp_path / "inventory.yaml")
    text = "\n".join(bad.value.lines())
    assert "telegram.api_base" in text and "telegram.allowed_updates" in text


def test_webhook_url_and_request_are_built_from_the_inventory(tmp_path: Path) -> None:
    data = env_data("https://api.telegram.org")
    data["environments"][ENV]["nginx"]["https_port"] = 443
    env = parse_inventory(yaml.safe_dump(data), tmp_path / "i.yaml").environment(ENV)
    assert webhook_url(env) == "https://bot.adapto.test/api/telegram/bot/webhook"
    call = set_webhook_call(env, "s")
    assert call.method == "setWebhook" and "drop_pending_updates" not in call.params
    assert "max_connections" not in call.params
    described = describe_info({"url": webhook_url(env), "allowed_updates": ["message", "poll"]},
                              env)
    assert described["warnings"] == [
        "allowed_updates is ['message', 'poll'] but the inventory gives ['message']"]
    assert (age(59), age(61), age(7200), age(90000)) == (
        "59 s ago", "1 min ago", "2 h ago", "1 d ago")


def test_client_says_when_the_answer_is_not_the_bot_api(fake: FakeTelegram) -> None:
    # A 404 page of something else at api_base (here: a path the fake does not serve).
    api = BotApi(TOKEN, fake.api_base + "/not-here", timeout_s=2, secrets=(SECRET,))
    assert api.scrub(f"x {TOKEN} {SECRET}") == "x **** ****"
    with pytest.raises(BotApiError) as error:
        api.call(get_webhook_info_call())
    assert "error 404: Not Found" in error.value.message
    assert TOKEN not in error.value.message and error.value.exit_code == 1
