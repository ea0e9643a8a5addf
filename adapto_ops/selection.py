"""What a command works on: the loaded inventory, one environment, some of its hosts."""

from __future__ import annotations

import functools
import sys
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

from adapto_ops.errors import InventoryError
from adapto_ops.inventory.loader import LoadedInventory, inventory_path, load_inventory
from adapto_ops.inventory.model import Environment
from adapto_ops.inventory.secrets import SecretValues, resolve_secrets, secrets_file_warning
from adapto_ops.render.configs import Target


@dataclass(frozen=True)
class Selection:
    loaded: LoadedInventory
    env_name: str
    host_names: tuple[str, ...] = ()

    @property
    def env(self) -> Environment:
        return self.loaded.environment(self.env_name)

    @cached_property
    def targets(self) -> list[Target]:
        env = self.env
        hosts = env.hosts
        if self.host_names:
            known = {h.name for h in hosts}
            unknown = [n for n in self.host_names if n not in known]
            if unknown:
                raise InventoryError(
                    f"{self.loaded.path}: environment {self.env_name!r} has no host "
                    f"{', '.join(map(repr, unknown))} (hosts: {', '.join(sorted(known))})"
                )
            hosts = [h for h in hosts if h.name in self.host_names]
        project = self.loaded.inventory.project
        return [Target.of(project, self.env_name, env, h) for h in hosts]

    @property
    def secrets_file(self) -> Path:
        """The untracked dotenv file secrets may come from (default .secrets/<env>.env)."""
        return self.loaded.resolve(self.env.secrets.file or f".secrets/{self.env_name}.env")

    def secrets(self) -> SecretValues:
        """The environment's secrets; a secrets file others can read is warned about once."""
        _warn_if_readable(self.secrets_file)
        return resolve_secrets(self.env.secrets.names, self.secrets_file)


@functools.cache
def _warn_if_readable(path: Path) -> None:
    # Once per process: deploy reads the secrets twice, and a warning is enough once.
    warning = secrets_file_warning(path)
    if warning:
        print(f"warning: {warning}", file=sys.stderr)


def select(inventory: str | None, env_name: str, hosts: list[str] | None = None) -> Selection:
    """Load and validate the inventory, check the environment and hosts exist."""
    selection = Selection(load_inventory(inventory_path(inventory)), env_name, tuple(hosts or ()))
    selection.env  # noqa: B018 - raises a clear error for an unknown environment
    selection.targets  # noqa: B018 - and for an unknown host
    return selection
