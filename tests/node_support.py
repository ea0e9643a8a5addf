"""What the Node-backend e2e modules share: their sandbox inventory.

tests/test_deploy_node_e2e.py (a small Node app) and tests/test_nextjs_e2e.py (the
reference Next.js backend) both move the repository's sandbox environment to their own
folder and loopback slot and give it a `backend.kind: node` on the production path:
`npm ci` (or the module's install command), `npm run build`, `npm start`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from tests.e2e_support import REPO, SECRET


def node_inventory_data(base: Path, *, env_name: str, host: str, address: str,
                        ssh_port: int, http_port: int, https_port: int,
                        ports: tuple[int, ...], server_name: str, install: str,
                        description: str, start_timeout_s: float,
                        backend_extra: dict[str, Any] | None = None,
                        nginx_extra: dict[str, Any] | None = None) -> dict[str, Any]:
    """The repository's sandbox environment moved to ``base`` and the slot given, as
    environment ``env_name`` with one web+backend host and a Node backend."""
    data = yaml.safe_load((REPO / "inventory.yaml").read_text(encoding="utf-8"))
    text = yaml.safe_dump(data["environments"]["sandbox"])
    env = yaml.safe_load(text.replace("/var/tmp/adapto-sandbox", str(base)))
    env["description"] = description
    env["hosts"] = [{**env["hosts"][0], "name": host, "address": address, "port": ssh_port,
                     "user": "root", "key_file": str(base / ".adapto" / "id_ed25519"),
                     "roles": ["web", "backend"], "private_address": "{address}"}]
    env["frontend"] = {"source": str(base / "frontend"), "build": None, "dist": "dist"}
    env["backend"].update(kind="node", source=str(base / "backend"), install=install,
                          build="npm run build", start="npm start", bind="{address}",
                          base_port=ports[0], instances=len(ports), **(backend_extra or {}))
    # Like production's Node backend: no migrations adapto runs, no sandbox database.
    env["backend"].pop("migrate", None)
    env["sandbox"]["postgres_port"] = None
    env["nginx"].update(server_names=[server_name], listen=["{address}"],
                        http_port=http_port, https_port=https_port, **(nginx_extra or {}))
    env["firewall"] = {"manage": False,
                       "allow": [f"{p}/tcp" for p in (ssh_port, http_port, https_port)],
                       "deny": [f"{p}/tcp" for p in ports]}
    env["health"] = {**(env.get("health") or {}), "instance_start_timeout_s": start_timeout_s}
    env["secrets"] = {"names": [SECRET, "ADAPTO_PROBE_TOKEN"],
                      "file": str(base / ".adapto" / "secrets.env")}
    data["environments"] = {env_name: env}
    return data
