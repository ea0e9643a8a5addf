"""Where things live on a host (DESIGN.md section 4), as plain path arithmetic."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class ReleaseLayout:
    """Paths under an environment's root folder on one host."""

    root: str

    @property
    def releases(self) -> str:
        return f"{self.root}/releases"

    @property
    def current(self) -> str:
        return f"{self.root}/current"

    @property
    def shared(self) -> str:
        return f"{self.root}/shared"

    @property
    def env_file(self) -> str:
        return f"{self.shared}/.env"

    @property
    def log_dir(self) -> str:
        return f"{self.shared}/logs"

    @property
    def config_dir(self) -> str:
        """Rendered files that belong to no release (firewall script, logrotate copy)."""
        return f"{self.shared}/config"

    @property
    def state_dir(self) -> str:
        return f"{self.root}/.adapto"

    @property
    def lock(self) -> str:
        return f"{self.state_dir}/lock"

    @property
    def history(self) -> str:
        return f"{self.state_dir}/history.jsonl"

    def release(self, release_id: str) -> str:
        return f"{self.releases}/{release_id}"
