"""Per-host view of an environment: ``{host}`` and ``{address}`` filled in.

One environment may describe several hosts that differ only by where their
files live (the sandbox runs several on one machine). Rather than repeating
sections per host, string fields may say ``{host}`` or ``{address}``; this
module substitutes them and re-validates, so everything downstream sees
plain values.
"""

from __future__ import annotations

from typing import Any

from pydantic import ValidationError

from adapto_ops.errors import InventoryError
from adapto_ops.inventory.model import Environment, Host


def _substitute(value: Any, mapping: dict[str, str]) -> Any:
    if isinstance(value, str):
        for token, replacement in mapping.items():
            value = value.replace(token, replacement)
        return value
    if isinstance(value, list):
        return [_substitute(v, mapping) for v in value]
    if isinstance(value, dict):
        return {k: _substitute(v, mapping) for k, v in value.items()}
    return value


def for_host(env: Environment, host: Host) -> Environment:
    """``env`` as seen from ``host``: placeholders replaced, ``hosts`` still complete."""
    data = env.model_dump(exclude={"hosts"})
    data = _substitute(data, {"{host}": host.name, "{address}": host.address})
    hosts = [
        h.model_copy(
            update={
                "private_address": _substitute(
                    h.private_address, {"{host}": h.name, "{address}": h.address}
                )
            }
        )
        for h in env.hosts
    ]
    data["hosts"] = [h.model_dump() for h in hosts]
    try:
        return Environment.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in first["loc"])
        reason = str(first["msg"]).removeprefix("Value error, ")
        raise InventoryError(
            f"host {host.name}: with {{host}}={host.name} and {{address}}={host.address}, "
            f"{where.lstrip('.')}: {reason} — change the host's name/address or that field"
        ) from None
