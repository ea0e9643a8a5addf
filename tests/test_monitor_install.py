"""`adapto monitor install` without a host: unit, PM2 app, inventory copy, manager choice."""

from __future__ import annotations

import json
import shutil
import subprocess
import time
from pathlib import Path

import pytest
import yaml

from adapto_ops.errors import OperationFailed
from adapto_ops.inventory.loader import load_inventory
from adapto_ops.monitor.install import (
    choose_manager,
    inventory_copy,
    plan,
    render_pm2_app,
    render_unit,
)
from adapto_ops.selection import select
from tests.e2e_support import REPO

SECRETS = {"TELEGRAM_BOT_TOKEN": "123:very-secret", "TELEGRAM_CHAT_ID": "42"}


@pytest.fixture
def production() -> tuple[object, object]:
    selection = select(str(REPO / "inventory.yaml"), "production")
    return selection, selection.targets[0]


def test_the_unit_runs_the_monitor_on_the_local_inventory_copy(production: tuple) -> None:
    selection, target = production
    p = plan(selection, target, channel="telegram", auto_recover=True, secret_values=SECRETS)
    unit = render_unit(p, "ai-platform", "production", "/r/op.jsonl")
    assert p.name == "adapto-monitor-ai-platform-production"
    assert p.dir == "/var/www/ai-platform/shared/monitor"
    assert ("ExecStart=python3 -m adapto_ops monitor -e production -i "
            "/var/www/ai-platform/shared/monitor/inventory.yaml --auto-recover") in unit
    assert "Restart=always" in unit and "WantedBy=multi-user.target" in unit
    assert "very-secret" not in unit


@pytest.mark.skipif(not shutil.which("systemd-analyze"), reason="no systemd-analyze")
def test_systemd_analyze_verifies_the_unit(production: tuple, tmp_path: Path) -> None:
    selection, target = production
    p = plan(selection, target, channel=None, auto_recover=True, secret_values={})
    # verify needs the ExecStart binary to exist: point it at this interpreter.
    p = type(p)(**{**p.__dict__, "argv": [shutil.which("python3") or "/usr/bin/python3",
                                          *p.argv[1:]], "dir": str(tmp_path)})
    unit = tmp_path / f"{p.name}.service"
    unit.write_text(render_unit(p, "ai-platform", "production", str(tmp_path / "r.jsonl")))
    result = subprocess.run(["systemd-analyze", "verify", str(unit)], capture_output=True,
                            text=True, check=False)
    assert result.returncode == 0, result.stderr


@pytest.mark.skipif(not shutil.which("node"), reason="no node")
def test_the_pm2_app_is_a_valid_ecosystem_file(production: tuple, tmp_path: Path) -> None:
    selection, target = production
    p = plan(selection, target, channel="telegram", auto_recover=False, secret_values=SECRETS)
    path = tmp_path / "ecosystem.config.js"
    path.write_text(render_pm2_app(p, "ai-platform", "production", "/r.jsonl",
                                   {"PM2_HOME": "/srv/pm2"}))
    loaded = subprocess.run(["node", "-e", f"console.log(JSON.stringify(require({str(path)!r})))"],
                            capture_output=True, text=True, check=True)
    [app] = json.loads(loaded.stdout)["apps"]
    assert app["name"] == p.name and app["interpreter"] == "none"
    assert [app["script"], *app["args"]] == p.argv and "--auto-recover" not in app["args"]
    assert app["env"] == {"PYTHONUNBUFFERED": "1", "PM2_HOME": "/srv/pm2"}


def test_the_inventory_copy_is_this_host_only_local_and_valid(production: tuple,
                                                              tmp_path: Path) -> None:
    selection, target = production
    text = inventory_copy(selection, target, "telegram")
    path = tmp_path / "inventory.yaml"
    path.write_text(text)
    env = load_inventory(path).environment("production")
    [host] = env.hosts
    assert host.name == "prod1" and host.connection == "local" and host.key_file is None
    assert env.secrets.file == "secrets.env" and env.monitor.results_file == "production.jsonl"
    assert env.monitor.alert.channel == "telegram"
    assert list(yaml.safe_load(text)["environments"]) == ["production"]
    assert env.nginx == selection.env.nginx and env.backend == selection.env.backend


def test_the_secrets_file_holds_only_what_the_monitor_needs(production: tuple) -> None:
    selection, target = production
    p = plan(selection, target, channel="telegram", auto_recover=True, secret_values=SECRETS)
    assert p.secrets_text == "TELEGRAM_BOT_TOKEN=123:very-secret\nTELEGRAM_CHAT_ID=42\n"
    assert "very-secret" not in p.inventory_text


def test_systemd_where_it_runs_pm2_elsewhere_and_always_on_a_sandbox() -> None:
    host = {"importable": "yes", "systemd": "yes", "pm2": "yes"}
    assert choose_manager(host, sandbox=False, host="h", python="python3") == "systemd"
    assert choose_manager(host, sandbox=True, host="h", python="python3") == "pm2"
    assert choose_manager({**host, "systemd": "no"}, sandbox=False, host="h",
                          python="python3") == "pm2"
    with pytest.raises(OperationFailed, match="adapto is not importable by python3"):
        choose_manager({**host, "importable": "no"}, sandbox=False, host="h", python="python3")
    with pytest.raises(OperationFailed, match="neither systemd nor PM2"):
        choose_manager({"importable": "yes", "systemd": "no", "pm2": "no"}, sandbox=False,
                       host="h", python="python3")


def test_a_local_host_runs_commands_here_without_ssh(production: tuple) -> None:
    from adapto_ops.deploy.session import open_transport
    from adapto_ops.local import LocalTransport
    from adapto_ops.remote import CommandFailed
    from adapto_ops.render.configs import Target

    selection, target = production
    local = target.host.model_copy(update={"connection": "local"})
    transport = open_transport(selection, Target.of("p", "production", selection.env, local))
    assert isinstance(transport, LocalTransport)  # no connection to the production address
    result = transport.run("cat; echo out; echo err >&2; exit 3", stdin=b"in ", check=False)
    assert (result.stdout, result.stderr, result.exit_code) == ("in out\n", "err\n", 3)
    with pytest.raises(CommandFailed, match="a step failed: err"):
        transport.run("echo err >&2; exit 3", what="a step")
    # A daemon the command leaves behind (holding its stdout) does not hold the command up.
    started = time.monotonic()
    assert transport.run("(sleep 5 &) ; echo started").stdout == "started\n"
    assert time.monotonic() - started < 2
    with pytest.raises(OperationFailed, match=r"no answer in 0\.2 s"):
        transport.run("sleep 5; echo never", timeout=0.2)
