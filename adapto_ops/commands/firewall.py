"""ufw commands for a host, in the order that keeps SSH reachable."""

from __future__ import annotations

from adapto_ops.inventory.model import Environment, Host


def ssh_rule(host: Host) -> str:
    return f"{host.port}/tcp"


def ufw_commands(env: Environment, host: Host) -> list[str]:
    """SSH first, then defaults, allows, denies, and only then `enable`.

    Each rule carries the comment `adapto firewall apply` marks its own rules with,
    so a host set up with this script reads as in sync, not as foreign rules.
    """
    allows = [ssh_rule(host)] + [r for r in env.firewall.allow if r != ssh_rule(host)]
    commands = [f"ufw allow {ssh_rule(host)} comment 'adapto: ssh'"]
    commands += ["ufw default deny incoming", "ufw default allow outgoing"]
    commands += [f"ufw allow {rule} comment 'adapto: allow'" for rule in allows[1:]]
    commands += [f"ufw deny {rule} comment 'adapto: deny'" for rule in env.firewall.deny]
    commands.append("ufw --force enable")
    return commands


# ufw lives in /usr/sbin, which a non-login shell's PATH may lack.
UFW_PATH = 'PATH="$PATH:/usr/sbin:/sbin"'


def as_root(user: str, command: str) -> str:
    """A `ufw ...` command as ``user`` runs it: through `sudo -n` unless that is root.

    `sudo -n` fails at once instead of waiting for a password nobody will type; sudo's
    own secure_path finds ufw (and sudoers may forbid setting PATH through it).
    """
    if user == "root":
        return f"{UFW_PATH} {command}"
    return f"sudo -n {command}"


def read_commands(user: str) -> list[str]:
    """The read-only ufw sections of a facts read (see commands.facts): status, rules, defaults.

    Each ufw run starts a Python interpreter (a few hundred ms on a busy host), so
    `ufw show added` runs in the background beside `ufw status verbose`.
    ``ssh_port``: ``$SSH_CONNECTION`` says which server port this session came in on.
    """
    installed = "command -v ufw >/dev/null 2>&1 || [ -x /usr/sbin/ufw ]"
    return [
        '__adapto_ufw=$(mktemp); __adapto_ufw_pid=',
        f"if {installed}; then {{ {as_root(user, 'ufw show added')} 2>&1 | head -n 500 "
        '> "$__adapto_ufw"; } & __adapto_ufw_pid=$!; fi',
        "echo @@ufw",
        f"if {installed}; then {as_root(user, 'ufw status verbose')} 2>&1 | head -n 60; "
        "else echo not-installed; fi",
        'if [ -n "$__adapto_ufw_pid" ]; then wait "$__adapto_ufw_pid"; fi',
        "echo @@ufw_added",
        'cat "$__adapto_ufw"; rm -f "$__adapto_ufw"',
        "echo @@ufw_defaults",
        "grep -E '^(DEFAULT_INPUT_POLICY|DEFAULT_OUTPUT_POLICY)=' /etc/default/ufw 2>&1",
        "echo @@ssh_port",
        'echo "${SSH_CONNECTION:-}"',
    ]


def firewall_read(user: str) -> str:
    """Only the ufw sections (what `adapto firewall` needs), ended by ``@@end``."""
    return "\n".join([*read_commands(user), "echo @@end"])
