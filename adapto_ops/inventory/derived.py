"""Rehearsal hosts derived from a sandbox environment's first host (`sandbox up --hosts N`).

A sandbox environment usually declares one host. `adapto sandbox up --hosts 3`
adds two more without editing inventory.yaml: each is a copy of the first host
on the next free loopback address, named after it (sandbox1 -> sandbox2,
sandbox3), with ports of its own through its own address and folders of its own
through ``{host}``. The count is kept in ``.adapto/sandbox/<env>/hosts`` beside
the inventory, so every later command with ``-e <env>`` acts on all of them;
`sandbox down` forgets it. Production environments are never touched.
"""

from __future__ import annotations

import ipaddress
import os
import re
from pathlib import Path

from adapto_ops.errors import InventoryError
from adapto_ops.inventory.model import Environment, Host, Inventory

STATE_DIR = Path(".adapto") / "sandbox"
MAX_HOSTS = 16  # a rehearsal of a fleet, not a fleet: each host runs sshd, nginx and PM2


def state_file(base_dir: Path, env_name: str) -> Path:
    """Where the derived host count of ``env_name`` is kept (beside the inventory)."""
    return base_dir / STATE_DIR / env_name / "hosts"


def read_count(base_dir: Path, env_name: str) -> int | None:
    """The persisted host count, or None when there is none."""
    path = state_file(base_dir, env_name)
    try:
        text = path.read_text(encoding="utf-8").strip()
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise InventoryError(f"{path}: cannot read the sandbox's host count: "
                             f"{exc.strerror}; delete it or run `adapto sandbox down "
                             f"-e {env_name}`") from None
    if not text.isdigit() or not 1 <= int(text) <= MAX_HOSTS:
        raise InventoryError(f"{path}: expected a host count from 1 to {MAX_HOSTS}, found "
                             f"{text[:20]!r}; delete the file or run `adapto sandbox down "
                             f"-e {env_name}`")
    return int(text)


def write_count(base_dir: Path, env_name: str, count: int) -> Path:
    """Persist ``count`` for ``env_name`` (atomically); return the file."""
    path = state_file(base_dir, env_name)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.tmp")
        tmp.write_text(f"{count}\n", encoding="utf-8")
        os.replace(tmp, path)
    except OSError as exc:
        raise InventoryError(f"cannot record the sandbox's {count} hosts in {path}: "
                             f"{exc.strerror}; make {path.parent} writable") from None
    return path


def forget_count(base_dir: Path, env_name: str) -> bool:
    """Remove the persisted count; True if there was one."""
    path = state_file(base_dir, env_name)
    try:
        path.unlink()
    except FileNotFoundError:
        return False
    return True


def _next_name(first: str, index: int, taken: set[str]) -> str:
    """sandbox1 -> sandbox2, sandbox3...; a name without a number gets one (web -> web2)."""
    match = re.fullmatch(r"(.*?)(\d+)", first)
    stem, start = (match.group(1), int(match.group(2))) if match else (first, 1)
    number = start + index
    while f"{stem}{number}" in taken:
        number += 1
    return f"{stem}{number}"


def _next_address(first: str, taken: set[str], where: str) -> str:
    """The first loopback address after ``first`` that no host of the environment uses."""
    address = ipaddress.ip_address(first)
    loopback = ipaddress.ip_network("127.0.0.0/8")
    while True:
        address += 1
        if address not in loopback or address == loopback.broadcast_address:
            raise InventoryError(f"{where}: no loopback address left after {first}")
        if str(address) not in taken:
            return str(address)


def derive_hosts(env: Environment, env_name: str, count: int, where: str) -> Environment:
    """``env`` with hosts added after the declared ones until there are ``count``.

    Refused when the environment is not a sandbox, when its first host is not on a
    loopback IPv4 address, or when its folders do not depend on ``{host}`` (derived
    hosts would then share the first host's sshd keys, nginx prefix and releases).
    """
    if count <= len(env.hosts):
        return env
    if env.sandbox is None:
        raise InventoryError(f"{where}: environment {env_name!r} has no `sandbox:` section; "
                             "only sandbox environments get derived hosts")
    if count > MAX_HOSTS:
        raise InventoryError(f"{where}: --hosts {count}: at most {MAX_HOSTS} sandbox hosts")
    first = env.hosts[0]
    try:
        in_loopback = ipaddress.ip_address(first.address) in ipaddress.ip_network("127.0.0.0/8")
    except ValueError:
        in_loopback = False
    if not in_loopback:
        raise InventoryError(f"{where}: host {first.name} address {first.address} is not a "
                             "loopback IPv4 address; cannot derive more sandbox hosts from it")
    shared = [label for label, value in (("sandbox.dir", env.sandbox.dir),
                                         ("paths.root", env.paths.root),
                                         ("nginx.prefix", env.nginx.prefix or "{host}"))
              if "{host}" not in value]
    if shared:
        raise InventoryError(
            f"{where}: {', '.join(shared)} of environment {env_name!r} must contain {{host}} "
            f"so that derived hosts get folders of their own; or declare {count} hosts there")
    names = {h.name for h in env.hosts}
    addresses = {h.address for h in env.hosts}
    hosts: list[Host] = list(env.hosts)
    last = first.address
    for index in range(1, count - len(env.hosts) + 1):
        name = _next_name(first.name, index, names)
        last = _next_address(last, addresses, where)
        names.add(name)
        addresses.add(last)
        hosts.append(first.model_copy(update={"name": name, "address": last}))
    return env.model_copy(update={"hosts": hosts})


def with_derived_hosts(inventory: Inventory, base_dir: Path, where: str) -> Inventory:
    """``inventory`` with every sandbox environment's persisted host count applied."""
    environments = dict(inventory.environments)
    changed = False
    for name, env in inventory.environments.items():
        if env.sandbox is None:
            continue
        count = read_count(base_dir, name)
        if count is not None and count > len(env.hosts):
            environments[name] = derive_hosts(env, name, count, where)
            changed = True
    return inventory.model_copy(update={"environments": environments}) if changed else inventory
