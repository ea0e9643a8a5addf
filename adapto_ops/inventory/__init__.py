"""inventory.yaml: the typed model, its loader, per-host views and secrets."""

from adapto_ops.inventory.hosts import for_host
from adapto_ops.inventory.loader import (
    LoadedInventory,
    inventory_path,
    load_inventory,
    parse_inventory,
)
from adapto_ops.inventory.model import Backend, Environment, Host, Inventory, Nginx

__all__ = [
    "Backend",
    "Environment",
    "Host",
    "Inventory",
    "LoadedInventory",
    "Nginx",
    "for_host",
    "inventory_path",
    "load_inventory",
    "parse_inventory",
]
