"""The local side of a deploy: build the frontend, hash what will be shipped."""

from __future__ import annotations

import contextlib
import getpass
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from adapto_ops.deploy.build_cache import CACHE_DIR, MEMO_FILE, BuildCache, HashMemo, build_key
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


@dataclass(frozen=True)
class BuildInfo:
    """How the frontend of this deploy came to be."""

    cache: str  # hit | built (a miss, now cached) | rebuilt (--rebuild) | skipped (--skip-build)
    key: str | None = None  # the build cache key (64 hex)
    seconds: float | None = None  # the build's own time, when one ran
    files: int = 0  # source files in the key

    def describe(self) -> str:
        """"cached (key 1a2b3c4d5e6f)", "built in 8.1s (key …, now cached)" or ""."""
        short = (self.key or "")[:12]
        if self.cache == "hit":
            return f"cached (key {short})"
        if self.cache in ("built", "rebuilt"):
            why = ", --rebuild" if self.cache == "rebuilt" else ""
            return f"built in {self.seconds or 0:.1f}s (key {short}{why}, now cached)"
        return ""


def frontend_dist(loaded: LoadedInventory, env: Environment, *, build: bool, rebuild: bool,
                  memo: HashMemo) -> tuple[Path, Manifest | None, BuildInfo]:
    """The dist folder to ship and, when it comes from the build cache, its manifest.

    With a build command: a cache hit ships ``<cache>/<key>/dist`` untouched; a
    miss (or ``rebuild``) runs the build in the source folder and inserts its
    dist. Without one (``--skip-build``, or no command): the source's dist as it is.
    """
    source = loaded.resolve(env.frontend.source)
    if not source.is_dir():
        raise AdaptoError(f"frontend.source {source} is not a folder (inventory {loaded.path})")
    command = env.frontend.build
    if not (build and command):
        dist = source / env.frontend.dist
        if not (dist / "index.html").is_file():
            hint = "run the build or drop --skip-build" if not build else "check frontend.dist"
            raise AdaptoError(f"{dist}/index.html not found: {hint}")
        return dist, None, BuildInfo("skipped")
    cache = BuildCache(loaded.resolve(CACHE_DIR))
    key = build_key(source, command, env.frontend.dist, memo)
    found = None if rebuild else cache.get(key.key)
    if found is not None:
        return found.dist, found.manifest, BuildInfo("hit", key.key, None, key.files)
    seconds = build_frontend(source, command)
    dist = source / env.frontend.dist
    if not (dist / "index.html").is_file():
        raise AdaptoError(f"{dist}/index.html not found after `{command}`: check frontend.dist "
                          f"(inventory {loaded.path})")
    try:
        entry = cache.put(key.key, dist)  # hashed in the entry: paths the memo never sees again
    except OSError as exc:
        raise OperationFailed(f"could not store the build in {cache.root}: {exc.strerror or exc}; "
                              "free disk space there, or deploy with --skip-build") from None
    return entry.dist, entry.manifest, BuildInfo("rebuilt" if rebuild else "built", key.key,
                                                 seconds, key.files)


def collect(
    loaded: LoadedInventory, env: Environment, what: str, *, build: bool, rebuild: bool = False
) -> tuple[Artifacts, BuildInfo]:
    """Build (or take from the build cache) and hash the components of this deploy."""
    components = components_for(what)
    parts: dict[str, Path] = {}
    info = BuildInfo("skipped")
    memo = HashMemo(loaded.resolve(CACHE_DIR) / MEMO_FILE)
    cached: Manifest = {}
    dist_sources: dict[str, Path] = {}
    if "frontend" in components:
        dist, dist_entries, info = frontend_dist(loaded, env, build=build, rebuild=rebuild,
                                                 memo=memo)
        if dist_entries is None:
            parts["dist"] = dist
        else:  # hashed once, when the entry was inserted
            cached = {f"dist/{rel}": e for rel, e in dist_entries.items()}
            dist_sources = {f"dist/{rel}": dist / rel for rel in dist_entries}
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
    manifest, sources = build_manifest(parts, memo)
    with contextlib.suppress(OSError):
        memo.save()  # a read-only cache folder costs the next deploy a re-hash, no more
    manifest = cached | manifest
    sources = dist_sources | sources
    revision_dir = (loaded.resolve(env.frontend.source) if "frontend" in components
                    else parts["backend"])
    revision = git_revision(revision_dir)
    return Artifacts(components, manifest, sources, deps_hash, revision, deployer()), info
