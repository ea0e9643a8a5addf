"""What a release contains, by content, and what must cross the network for it.

A manifest maps each release-relative path (``dist/assets/app-1a2b.js``,
``backend/app.py``) to its SHA-256, size and mode. Comparing the new manifest
with the previous release's tells which files are hard-linked on the host
(unchanged), sent (new or changed) or deleted. Hashing 37 MB takes well under
a second; that is the whole cost of a no-change deploy on this side.
"""

from __future__ import annotations

import hashlib
import io
import os
import stat
import tarfile
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

# Never shipped: dependency folders are installed on the host, secrets are linked there,
# and a local `next build` output (.next/) is rebuilt per release on the host.
EXCLUDED_NAMES = frozenset(
    {".git", "node_modules", ".venv", "__pycache__", ".env", ".pytest_cache", ".DS_Store",
     ".next"}
)


@dataclass(frozen=True)
class Entry:
    sha256: str
    size: int
    mode: int


Manifest = dict[str, Entry]


@dataclass(frozen=True)
class UploadPlan:
    """The difference between the previous release and the new one."""

    send: list[str]  # new or changed paths
    delete: list[str]  # in the hard-linked copy but not in the new release
    unchanged: int


def _walk(root: Path) -> Iterator[Path]:
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = sorted(d for d in dirnames if d not in EXCLUDED_NAMES)
        for name in sorted(filenames):
            if name not in EXCLUDED_NAMES:
                yield Path(dirpath) / name


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while chunk := handle.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


class Hasher(Protocol):
    def sha256(self, path: Path, info: os.stat_result | None = None) -> str: ...


def build_manifest(parts: dict[str, Path], memo: Hasher | None = None,
                   ) -> tuple[Manifest, dict[str, Path]]:
    """Manifest of ``{release subfolder: local folder}``, and where each file is locally.

    ``memo`` (a :class:`~adapto_ops.deploy.build_cache.HashMemo`) skips re-reading
    files whose stat did not change since it last hashed them.
    """
    manifest: Manifest = {}
    sources: dict[str, Path] = {}
    for prefix, folder in parts.items():
        for path in _walk(folder):
            info = path.stat()
            if not stat.S_ISREG(info.st_mode):
                continue
            rel = f"{prefix}/{path.relative_to(folder).as_posix()}"
            digest = memo.sha256(path, info) if memo is not None else _sha256(path)
            manifest[rel] = Entry(digest, info.st_size, stat.S_IMODE(info.st_mode))
            sources[rel] = path
    return manifest, sources


def plan_upload(new: Manifest, previous: Manifest, keep: Iterable[str] = ()) -> UploadPlan:
    """Send what differs; delete what the previous release had that this one does not.

    ``keep`` lists previous paths to leave in place although the new build
    lacks them (the previous build's hashed assets, for open browser tabs).
    """
    kept = set(keep)
    send = [p for p, e in new.items() if previous.get(p) != e]
    delete = [p for p in previous if p not in new and p not in kept]
    return UploadPlan(send=sorted(send), delete=sorted(delete), unchanged=len(new) - len(send))


def carried_assets(previous: Manifest, new: Manifest, assets_prefix: str) -> list[str]:
    """The previous build's own hashed assets that the new build no longer has."""
    return sorted(p for p in previous if p.startswith(assets_prefix) and p not in new)


def tarball(
    paths: list[str],
    sources: dict[str, Path],
    manifest: Manifest,
    *,
    prefix: str = "",
    extra: list[tuple[str, bytes, int]] = (),  # type: ignore[assignment]
) -> bytes:
    """A gzip tarball of ``paths`` under ``prefix``, plus in-memory ``extra`` files.

    Modes come from the manifest; owners are left to the extracting user.
    """
    buffer = io.BytesIO()
    # Level 1: most of a build is already-minified text; beyond level 1 costs CPU, not bytes.
    with tarfile.open(fileobj=buffer, mode="w:gz", compresslevel=1) as tar:
        for rel in paths:
            entry = manifest[rel]
            info = tarfile.TarInfo(prefix + rel)
            info.size = entry.size
            info.mode = entry.mode
            info.mtime = int(sources[rel].stat().st_mtime)
            with sources[rel].open("rb") as handle:
                tar.addfile(info, handle)
        for name, data, mode in extra:
            info = tarfile.TarInfo(name)
            info.size, info.mode, info.mtime = len(data), mode, int(time.time())
            tar.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


def to_json(manifest: Manifest) -> dict[str, list[object]]:
    return {p: [e.sha256, e.size, e.mode] for p, e in manifest.items()}


def from_json(data: dict[str, list[object]] | None) -> Manifest:
    if not data:
        return {}
    return {p: Entry(str(v[0]), int(v[1]), int(v[2])) for p, v in data.items()}  # type: ignore[arg-type]


def dependency_hash(backend_dir: Path, files: list[str], install: str | None) -> str:
    """Identity of the backend's dependencies: their manifest files and the install command."""
    digest = hashlib.sha256((install or "").encode())
    for name in files:
        path = backend_dir / name
        digest.update(name.encode() + b"\0")
        digest.update(path.read_bytes() if path.is_file() else b"<absent>")
    return digest.hexdigest()[:16]
