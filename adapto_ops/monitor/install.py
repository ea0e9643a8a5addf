"""`adapto monitor install|uninstall`: the monitor running unattended on the server itself.

Under ``<root>/shared/monitor/`` each host gets a copy of the inventory with
only this environment and only itself, marked ``connection: local`` (the
monitor checks and recovers its own host without SSH), a secrets file (mode
0600) holding only what the monitor needs, and its results file. systemd
runs it where systemd runs; PM2 (as an app beside the backend) where it does
not, and always on a sandbox, whose host is the developer's own machine.
"""

from __future__ import annotations

import shlex
import time
from dataclasses import dataclass
from typing import Any

import yaml

from adapto_ops.errors import OperationFailed
from adapto_ops.events import Reporter, Step
from adapto_ops.inventory.secrets import dotenv_quote
from adapto_ops.render.configs import Target
from adapto_ops.render.engine import render_template
from adapto_ops.selection import Selection

q = shlex.quote
SYSTEMD_DIR = "/etc/systemd/system"


@dataclass(frozen=True)
class InstallPlan:
    """What one host gets; ``secrets_text`` is never printed."""

    host: str
    name: str  # the systemd unit's and the PM2 app's name
    dir: str
    argv: list[str]
    inventory_text: str
    secrets_text: str
    secret_names: list[str]

    @property
    def inventory_path(self) -> str:
        return f"{self.dir}/inventory.yaml"

    @property
    def secrets_path(self) -> str:
        return f"{self.dir}/secrets.env"

    @property
    def ecosystem_path(self) -> str:
        return f"{self.dir}/ecosystem.config.js"

    @property
    def unit_path(self) -> str:
        return f"{SYSTEMD_DIR}/{self.name}.service"


def service_name(project: str, env_name: str) -> str:
    return f"adapto-monitor-{project}-{env_name}"


def monitor_dir(target: Target) -> str:
    return f"{target.layout.shared}/monitor"


def results_path(target: Target, env_name: str) -> str:
    return f"{monitor_dir(target)}/{env_name}.jsonl"


def inventory_copy(selection: Selection, target: Target, channel: str | None) -> str:
    """This environment with only ``target``'s host (local), secrets and results beside it."""
    env_name = selection.env_name
    data = selection.env.model_dump(mode="json", exclude_unset=True)
    host = target.host.model_dump(mode="json", exclude_unset=True)
    host.pop("key_file", None)
    host["connection"] = "local"
    data["hosts"] = [host]
    data["secrets"] = {"names": list(selection.env.secrets.names), "file": "secrets.env"}
    monitor = data.setdefault("monitor", {})
    monitor["results_file"] = f"{env_name}.jsonl"
    monitor.setdefault("alert", {})["channel"] = channel
    document = {"version": 1, "project": selection.loaded.inventory.project,
                "environments": {env_name: data}}
    return (f"# Written by `adapto monitor install -e {env_name}` for host "
            f"{target.host.name}: the monitor's own copy, edits are overwritten.\n"
            + yaml.safe_dump(document, sort_keys=False))


def plan(selection: Selection, target: Target, *, channel: str | None, auto_recover: bool,
         secret_values: dict[str, str]) -> InstallPlan:
    directory = monitor_dir(target)
    env = selection.env
    argv = [env.monitor.python, "-m", "adapto_ops", "monitor", "-e", selection.env_name,
            "-i", f"{directory}/inventory.yaml"] + (["--auto-recover"] if auto_recover else [])
    secrets_text = "".join(f"{k}={dotenv_quote(v)}\n" for k, v in secret_values.items())
    return InstallPlan(target.host.name, service_name(selection.loaded.inventory.project,
                                                      selection.env_name),
                       directory, argv, inventory_copy(selection, target, channel),
                       secrets_text, sorted(secret_values))


def render_unit(p: InstallPlan, project: str, env_name: str, results: str) -> str:
    """The systemd unit that runs the monitor."""
    return render_template("monitor/adapto-monitor.service.j2", {
        "name": p.name, "project": project, "env": env_name, "dir": p.dir, "results": results,
        "exec_start": shlex.join(p.argv)})


def render_pm2_app(p: InstallPlan, project: str, env_name: str, results: str,
                   app_env: dict[str, str]) -> str:
    """The PM2 ecosystem file of the monitor app."""
    return render_template("monitor/ecosystem.config.js.j2", {
        "name": p.name, "project": project, "env": env_name, "dir": p.dir, "results": results,
        "argv": p.argv, "app_env": {"PYTHONUNBUFFERED": "1", **app_env}})


# --- on the host ---------------------------------------------------------------------


def probe_command(python: str, results: str) -> str:
    """What the host has: systemd, PM2, adapto for ``python``; PM2_HOME; results so far."""
    return "; ".join([
        "if [ -d /run/systemd/system ] && command -v systemctl >/dev/null 2>&1; "
        "then echo systemd=yes; else echo systemd=no; fi",
        "if command -v pm2 >/dev/null 2>&1; then echo pm2=yes; else echo pm2=no; fi",
        f"if {q(python)} -c 'import adapto_ops.monitor' >/dev/null 2>&1; "
        "then echo importable=yes; else echo importable=no; fi",
        'echo "pm2_home=${PM2_HOME:-}"',
        f"echo results_lines=$(cat {q(results)} 2>/dev/null | wc -l)",
    ])


def parse_probe(stdout: str) -> dict[str, str]:
    return dict(line.split("=", 1) for line in stdout.splitlines() if "=" in line)


def upload_command(path: str, mode: str) -> str:
    """Write stdin to ``path`` atomically, readable as ``mode``, in a folder only root reads."""
    folder = path.rsplit("/", 1)[0]
    return (f"umask 077 && mkdir -p {q(folder)} && chmod 700 {q(folder)} && "
            f"cat > {q(path)}.tmp && chmod {mode} {q(path)}.tmp && mv -f {q(path)}.tmp {q(path)}")


def start_command(manager: str, p: InstallPlan) -> str:
    if manager == "systemd":
        return (f"systemctl daemon-reload && systemctl enable {q(p.name)} && "
                f"systemctl restart {q(p.name)}")
    # delete + start (not restart): PM2 keeps an app's old arguments and environment.
    return (f"pm2 delete {q(p.name)} >/dev/null 2>&1; pm2 start {q(p.ecosystem_path)} && "
            "pm2 save")


def stop_command(manager: str, p: InstallPlan) -> str:
    if manager == "systemd":
        return (f"systemctl disable --now {q(p.name)}; rm -f {q(p.unit_path)}; "
                "systemctl daemon-reload")
    return f"pm2 delete {q(p.name)} && pm2 save"


def logs_command(manager: str, p: InstallPlan) -> str:
    if manager == "systemd":
        return f"journalctl -u {q(p.name)} -n 20 --no-pager 2>&1"
    return f"pm2 logs {q(p.name)} --lines 20 --nostream --raw 2>&1 | tail -n 20"


def wait_command(results: str, after_lines: int, timeout_s: float) -> str:
    """Succeeds once the monitor has appended a round to its results file."""
    tries = int(timeout_s / 0.5)
    return (f"n=0; while [ $n -lt {tries} ]; do "
            f"[ $(cat {q(results)} 2>/dev/null | wc -l) -gt {int(after_lines)} ] && exit 0; "
            "n=$((n+1)); sleep 0.5; done; exit 1")


def choose_manager(found: dict[str, str], *, sandbox: bool, host: str, python: str) -> str:
    """systemd where it runs (never on a sandbox: that is this machine), else PM2."""
    if found.get("importable") != "yes":
        raise OperationFailed(
            f"{host}: adapto is not importable by {python} on the host; install it there "
            f"(pip install adapto-ops) or set monitor.python to a Python that has it")
    if found.get("systemd") == "yes" and not sandbox:
        return "systemd"
    if found.get("pm2") == "yes":
        return "pm2"
    raise OperationFailed(f"{host}: neither systemd nor PM2 found to run the monitor")


def install_on(deployer: Any, p: InstallPlan, *, project: str, env_name: str,
               sandbox: bool, reporter: Reporter, dry_run: bool, scrub: Any) -> dict[str, Any]:
    """Upload, install and start the monitor on one host; wait for its first round."""
    t, host = deployer.t, deployer.name
    results = results_path(deployer.target, env_name)
    python = deployer.env.monitor.python
    with Step(reporter, host, "check", "systemd, PM2, adapto on the host") as step:
        found = parse_probe(t.run(probe_command(python, results), check=False, mutates=False,
                                  what="check the host for the monitor").stdout)
        manager = choose_manager(found, sandbox=sandbox, host=host, python=python)
        step.done_message = f"runs under {manager}"
    if manager == "systemd":
        service_text, service_path = render_unit(p, project, env_name, results), p.unit_path
    else:
        app_env = {"PM2_HOME": found["pm2_home"]} if found.get("pm2_home") else {}
        service_text = render_pm2_app(p, project, env_name, results, app_env)
        service_path = p.ecosystem_path
    with Step(reporter, host, "upload", f"{p.dir}: inventory, secrets "
              f"({', '.join(p.secret_names) or 'none'}), {service_path}"):
        t.run(upload_command(p.inventory_path, "600"), stdin=p.inventory_text.encode(),
              what="upload the monitor's inventory")
        t.run(upload_command(p.secrets_path, "600"), stdin=p.secrets_text.encode(),
              what="upload the monitor's secrets")
        t.run(upload_command(service_path, "644"), stdin=service_text.encode(),
              what=f"install {service_path}")
    with Step(reporter, host, "start", f"{p.name} ({manager})"):
        t.run(start_command(manager, p), what=f"start {p.name}")
    outcome = {"host": host, "manager": manager, "name": p.name, "service": service_path,
               "service_text": service_text, "results": results, "running": None}
    if dry_run:
        return outcome
    with Step(reporter, host, "running", "waiting for its first round") as step:
        started = time.perf_counter()
        waited = t.run(wait_command(results, int(found.get("results_lines") or 0), 60),
                       check=False, mutates=False, what="wait for the monitor", timeout=90)
        outcome["running"] = waited.ok
        if waited.ok:
            step.done_message = f"first round in {results} after " \
                                f"{time.perf_counter() - started:.1f}s"
        else:
            logs = t.run(logs_command(manager, p), check=False, mutates=False).stdout
            step.failed = True
            step.done_message = f"no round after 60 s; its log: {scrub(logs.strip())[-1500:]}"
    return outcome


def uninstall_on(deployer: Any, p: InstallPlan, *, sandbox: bool, reporter: Reporter) -> str:
    """Stop and remove the monitor; its results file is kept."""
    t, host = deployer.t, deployer.name
    with Step(reporter, host, "uninstall", p.name) as step:
        found = parse_probe(t.run(probe_command(deployer.env.monitor.python, "/dev/null"),
                                  check=False, mutates=False, what="check the host").stdout)
        managers = (["systemd"] if found.get("systemd") == "yes" and not sandbox else []) \
            + (["pm2"] if found.get("pm2") == "yes" else [])
        for manager in managers:
            t.run(stop_command(manager, p), check=False, what=f"stop {p.name} ({manager})")
        t.run(f"rm -f {q(p.inventory_path)} {q(p.secrets_path)} {q(p.ecosystem_path)}",
              what="remove the monitor's inventory and secrets")
        step.done_message = f"{p.name} removed ({', '.join(managers) or 'no service manager'})" \
                            f"; results kept in {p.dir}"
    return host
