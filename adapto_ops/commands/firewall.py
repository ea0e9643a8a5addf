"""ufw commands for a host, in the order that keeps SSH reachable."""

from __future__ import annotations

from adapto_ops.inventory.model import Environment, Host


def ssh_rule(host: Host) -> str:
    return f"{host.port}/tcp"


def ufw_commands(env: Environment, host: Host) -> list[str]:
    """SSH first, then defaults, allows, denies, and only then `enable`."""
    allows = [ssh_rule(host)] + [r for r in env.firewall.allow if r != ssh_rule(host)]
    commands = [f"ufw allow {ssh_rule(host)} comment 'adapto: ssh'"]
    commands += ["ufw default deny incoming", "ufw default allow outgoing"]
    commands += [f"ufw allow {rule}" for rule in allows[1:]]
    commands += [f"ufw deny {rule}" for rule in env.firewall.deny]
    commands.append("ufw --force enable")
    return commands
