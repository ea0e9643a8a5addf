"""`adapto init`: a commented starter inventory for a new project."""

from __future__ import annotations

import os
from pathlib import Path

from adapto_ops.errors import AdaptoError
from adapto_ops.render.engine import render_template


def starter_inventory(*, project: str, domain: str, address: str) -> str:
    return render_template(
        "inventory/starter.yaml.j2", {"project": project, "domain": domain, "address": address}
    )


def write_starter_inventory(path: Path, *, project: str, domain: str, address: str) -> None:
    """Write the starter; refuse to overwrite anything already at ``path``."""
    text = starter_inventory(project=project, domain=domain, address=address)
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
