"""The Rich console every command prints through."""

from __future__ import annotations

from typing import Any


def console(**kwargs: Any) -> Any:
    """A Rich console; in logs and pipes (no terminal) 200 columns, so ids are never cut."""
    from rich.console import Console

    made = Console(highlight=False, soft_wrap=True, **kwargs)
    if not made.is_terminal:
        made.width = 200
    return made
