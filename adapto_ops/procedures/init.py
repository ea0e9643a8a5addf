"""`adapto init`: a commented starter inventory for a new project."""

from __future__ import annotations

import os
from pathlib import Path

from adapto_ops.errors import AdaptoError, InventoryError
from adapto_ops.render.engine import render_template

SANDBOX_ADDRESS = "127.0.0.2"
SANDBOX_DIR = "/var/tmp/adapto-sandbox"


def starter_inventory(*, project: str, domain: str, address: str,
                      sandbox_address: str = SANDBOX_ADDRESS,
                      sandbox_dir: str = SANDBOX_DIR) -> str:
    """The starter text: ``production`` at ``address`` and its rehearsal ``sandbox`` on
    ``sandbox_address``, with every sandbox folder under ``sandbox_dir``/<project>."""
    from adapto_ops.sandbox.hosts import is_loopback

    if not is_loopback(sandbox_address):
        raise InventoryError(f"--sandbox-address {sandbox_address}: not in 127.0.0.0/8; "
                             "the sandbox only ever uses loopback addresses")
    folder = sandbox_dir.rstrip("/")
    if not folder.startswith("/") or any(c.isspace() or c in "{}\"'#" for c in folder):
        raise InventoryError(f"--sandbox-dir {sandbox_dir!r}: must be an absolute path "
                             "without spaces, quotes, braces or #")
    return render_template(
        "inventory/starter.yaml.j2",
        {"project": project, "domain": domain, "address": address,
         "sandbox_address": sandbox_address, "sandbox_dir": f"{folder}/{project}"},
    )


def write_starter_inventory(path: Path, *, project: str, domain: str, address: str,
                            sandbox_address: str = SANDBOX_ADDRESS,
                            sandbox_dir: str = SANDBOX_DIR) -> None:
    """Write the starter; refuse to overwrite anything already at ``path``."""
    text = starter_inventory(project=project, domain=domain, address=address,
                             sandbox_address=sandbox_address, sandbox_dir=sandbox_dir)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
    except FileExistsError:
        raise AdaptoError(
            f"{path} already exists; adapto init never overwrites — move it away or "
            "pass another path"
        ) from None
    except OSError as exc:
        raise AdaptoError(f"cannot create {path}: {exc.strerror}") from None
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        handle.write(text)
