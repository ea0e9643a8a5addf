"""The Jinja2 environment: where templates are found, and strict undefined.

Installed from a wheel, templates live in ``adapto_ops/templates`` (the
top-level ``templates/`` is copied there at build time); in a source checkout
or an editable install they are read from the repository's ``templates/``.
"""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Any

PACKAGE_DIR = Path(__file__).resolve().parent.parent


def templates_dir() -> Path:
    """The folder holding nginx/, pm2/, firewall/, env/ and logrotate/ templates."""
    for candidate in (PACKAGE_DIR / "templates", PACKAGE_DIR.parent / "templates"):
        if (candidate / "nginx").is_dir():
            return candidate
    raise FileNotFoundError(
        f"adapto's templates are missing (looked in {PACKAGE_DIR / 'templates'} and "
        f"{PACKAGE_DIR.parent / 'templates'}); reinstall adapto"
    )


@functools.cache
def _environment() -> Any:
    import jinja2  # imported here: rendering is not on the CLI's start-up path

    return jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(templates_dir())),
        # Compiled templates are kept (Jinja's per-user cache folder, checked for its
        # owner and mode by Jinja): compiling the nginx site costs ~50 ms a command.
        bytecode_cache=_bytecode_cache(jinja2),
        undefined=jinja2.StrictUndefined,
        keep_trailing_newline=True,
        trim_blocks=True,
        lstrip_blocks=True,
        autoescape=False,
    )


def _bytecode_cache(jinja2: Any) -> Any:
    try:
        return jinja2.FileSystemBytecodeCache()
    except (OSError, RuntimeError):
        return None  # no usable temporary folder: compile every time


def render_template(name: str, context: dict[str, Any]) -> str:
    """Render ``templates/<name>``; an undefined variable raises instead of printing ''."""
    return str(_environment().get_template(name).render(**context))
