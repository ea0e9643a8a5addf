"""The local side of a deploy: build the frontend, hash what will be shipped."""

from __future__ import annotations

import getpass
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from adapto_ops.deploy.manifest import Manifest, build_manifest, dependency_hash
from adapto_ops.errors import AdaptoError, OperationFailed
from adapto_ops.inventory.loader import LoadedInventory
from adapto_ops.inventory.model import Environment

COMPONENTS = ("frontend", "backend")


@dataclass(frozen=True)
class Artifacts:
    """What this deploy ships: a manifest of release-relative files and where they are."""

    components: tuple[str, ...]
    manifest: Manifest
    sources: dict[str, Path]
    deps_hash: str | None  # None when the backend is not part of this deploy
    revision: str
    deployer: str

    @property
    def total_bytes(self) -> int:
        return sum(e.size for e in self.manifest.values())


def components_for(what: str) -> tuple[str, ...]:
    return COMPONENTS if what == "all" else (what,)


def git_revision(folder: Path) -> str:
    """`git describe --always --dirty` of the folder, or "unknown" outside git."""
    try:
        proc = subprocess.run(
            ["git", "describe", "--always", "--dirty", "--abbrev=10"],
            cwd=folder, capture_output=True, text=True, timeout=10,
        )
    except (OSError, subprocess.TimeoutExpired):
        return "unknown"
    return proc.stdout.strip() if proc.returncode == 0 else "unknown"


def deployer() -> str:
    try:
        user = getpass.getuser()
    except (KeyError, OSError):
        user = "unknown"
    return f"{user}@{socket.gethostname()}"


def build_frontend(source: Path, command: str, log: Path | None = None) -> float:
    """Run the inventory's build command in ``source``; returns seconds taken."""
    started = time.perf_counter()
    try:
        proc = subprocess.run(
            command, shell=True, cwd=source, capture_output=True, text=True, timeout=1800,
        )
    except subprocess.TimeoutExpired:
        raise OperationFailed(f"frontend build `{command}` in {source} took over 30 min") from None
    if log is not None:
        log.write_text(proc.stdout + proc.stderr)
    if proc.returncode != 0:
        tail = [line for line in (proc.stdout + proc.stderr).splitlines() if line.strip()][-1:]
        raise OperationFailed(
            f"frontend build `{command}` failed in {source} (exit {proc.returncode}): "
            f"{tail[0] if tail else 'no output'}"
        )
    return time.perf_counter() - started


def collect(
    loaded: LoadedInventory, env: Environment, what: str, *, build: bool
) -> tuple[Artifacts, float | None]:
    """Build (optionally) and hash the components of this deploy."""
    components = components_for(what)
    parts: dict[str, Path] = {}
    build_s: float | None = None
    if "frontend" in components:
        source = loaded.resolve(env.frontend.source)
        if not source.is_dir():
            raise AdaptoError(f"frontend.source {source} is not a folder (inventory {loaded.path})")
        if build and env.frontend.build:
            build_s = build_frontend(source, env.frontend.build)
        dist = source / env.frontend.dist
        if not (dist / "index.html").is_file():
            hint = "run the build or drop --skip-build" if not build else "check frontend.dist"
            raise AdaptoError(f"{dist}/index.html not found: {hint}")
        parts["dist"] = dist
    deps_hash = None
    if "backend" in components:
        backend_dir = loaded.resolve(env.backend.source)
        if not backend_dir.is_dir():
            raise AdaptoError(f"backend.source {backend_dir} is not a folder (inventory "
                              f"{loaded.path})")
        parts["backend"] = backend_dir
        deps_hash = dependency_hash(
            backend_dir, env.backend.dependency_manifest, env.backend.install
        )
    manifest, sources = build_manifest(parts)
    revision = git_revision(next(iter(parts.values())))
    return Artifacts(components, manifest, sources, deps_hash, revision, deployer()), build_s
