"""Which secrets an environment needs, and which are missing here or on its hosts (pure).

`adapto secrets check` and `adapto audit` both use :func:`missing_secrets`
(here: the process environment and the secrets file) and
:func:`missing_on_host` (the names a host's shared .env sets, read on the host
by :func:`adapto_ops.facts.read_env_file`). Only names travel: a value is
never an argument, a field or a message of anything in this module.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import dataclass
from typing import Any

from adapto_ops.facts import EnvFileFacts
from adapto_ops.inventory.model import Environment
from adapto_ops.inventory.secrets import SecretValues

LOCAL = "local"
# Kinds that fail a check; "not-deployed" (no .env yet) is only a note.
FAILING_KINDS = frozenset({"missing", "permissions", "unreadable"})


@dataclass(frozen=True)
class SecretNeed:
    """One secret name and the inventory fields that need it."""

    name: str
    needed_by: tuple[str, ...]
    # Deploy writes it into each host's shared .env (it is in secrets.names).
    on_host: bool


@dataclass(frozen=True)
class SecretProblem:
    """A secret missing (or a secrets file exposed) here or on one host. Names only."""

    name: str  # "" for a problem of the file itself (its mode or owner)
    where: str  # LOCAL or a host name
    kind: str  # missing | not-deployed | permissions | unreadable
    needed_by: tuple[str, ...]
    message: str

    @property
    def failing(self) -> bool:
        return self.kind in FAILING_KINDS

    def as_dict(self) -> dict[str, Any]:
        return {"name": self.name, "failing": self.failing, "where": self.where, "kind": self.kind,
                "needed_by": list(self.needed_by), "message": self.message}


def needed_secrets(env: Environment) -> list[SecretNeed]:
    """Every secret name the environment refers to, in inventory order, with who needs it.

    secrets.names (deploy ships them all), backend.requires that are secrets,
    health.probe_token, the telegram section's two, the monitor's alert
    channel's and, for a sandbox with PostgreSQL, the two database URLs.
    """
    by: dict[str, list[str]] = {}

    def need(name: str | None, field: str) -> None:
        if name:
            by.setdefault(name, [])
            if field not in by[name]:
                by[name].append(field)

    for name in env.secrets.names:
        need(name, "secrets.names")
    for name in env.backend.requires:
        if name not in env.backend.env:  # a plain value is no secret
            need(name, "backend.requires")
    need(env.health.probe_token, "health.probe_token")
    if "telegram" in env.model_fields_set:
        need(env.telegram.token_secret, "telegram.token_secret")
        need(env.telegram.webhook_secret, "telegram.webhook_secret")
    alert = env.monitor.alert
    if alert.channel == "telegram":
        need(alert.telegram_token_secret, "monitor.alert.telegram_token_secret")
        need(alert.telegram_chat_id_secret, "monitor.alert.telegram_chat_id_secret")
    elif alert.channel == "webhook":
        need(alert.webhook_url_secret, "monitor.alert.webhook_url_secret")
    if env.sandbox is not None and env.sandbox.postgres_port is not None:
        # `sandbox up` writes both for its PostgreSQL; the deploy's migrations need them.
        need("DATABASE_URL", "sandbox.postgres_port")
        need("MIGRATION_DATABASE_URL", "sandbox.postgres_port")
    shipped = set(env.secrets.names)
    return [SecretNeed(n, tuple(f), n in shipped) for n, f in by.items()]


def _set_locally(values: SecretValues | Mapping[str, str]) -> Collection[str]:
    found = values.values if isinstance(values, SecretValues) else values
    return {k for k, v in found.items() if v}


def missing_secrets(env: Environment,
                    loaded: SecretValues | Mapping[str, str]) -> list[SecretProblem]:
    """The needed names without a value here (``loaded``: resolved secrets, or name -> value).

    Pass what :func:`adapto_ops.inventory.secrets.resolve_secrets` gives for the
    names of :func:`needed_secrets` (not only secrets.names): the monitor's alert
    secrets may live outside that list.
    """
    have = _set_locally(loaded)
    problems = []
    for need in needed_secrets(env):
        if need.name in have:
            continue
        hint = "" if need.on_host else "; it is not in secrets.names, so deploy does not ship it"
        problems.append(SecretProblem(
            need.name, LOCAL, "missing", need.needed_by,
            f"{need.name} has no value here (needed by {', '.join(need.needed_by)}): set it "
            f"with `adapto secrets set {need.name}` or export it{hint}"))
    return problems


def missing_on_host(env: Environment, host: str, user: str,
                    facts: EnvFileFacts, env_file: str) -> list[SecretProblem]:
    """What the host's shared .env lacks of the shipped names, and its mode and owner.

    ``user`` is the SSH user adapto deploys as: the file must be 0600 and theirs.
    """
    shipped = [n for n in needed_secrets(env) if n.on_host]
    if not facts.exists:
        if not shipped:
            return []
        return [SecretProblem("", host, "not-deployed", (),
                              f"{host}: {env_file} does not exist yet (no deploy so far); "
                              "`adapto deploy` writes it")]
    problems = []
    if facts.mode is not None and facts.mode & 0o077:
        problems.append(SecretProblem(
            "", host, "permissions", (),
            f"{host}: {env_file} has mode {facts.mode:04o}, readable by others than "
            f"{user}; deploy again or run: chmod 600 {env_file}"))
    if facts.owner and facts.owner != user:
        problems.append(SecretProblem(
            "", host, "permissions", (),
            f"{host}: {env_file} is owned by {facts.owner}, not by the deploy user {user}"))
    if not facts.readable:
        problems.append(SecretProblem("", host, "unreadable", (),
                                      f"{host}: {env_file} cannot be read by {user}"))
        return problems
    for need in shipped:
        if need.name not in facts.names:
            problems.append(SecretProblem(
                need.name, host, "missing", need.needed_by,
                f"{host}: {need.name} is not set in {env_file} (needed by "
                f"{', '.join(need.needed_by)}): set it here, then `adapto deploy backend`"))
    return problems
