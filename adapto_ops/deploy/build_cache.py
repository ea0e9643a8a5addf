"""A local cache of frontend builds, keyed by what the build reads.

The key is a SHA-256 of:

- the source tree: in a git work tree, the files ``git ls-files -co
  --exclude-standard`` lists (tracked, plus untracked files git does not
  ignore); outside git, every file under the source folder except
  ``node_modules``, the dist folder and dot folders. ``.env*`` files at the
  top of the source folder count even when git ignores them: Vite and Next.js
  read them at build time (``.env.local`` is ignored by convention);
- the lockfile (``package-lock.json`` and its kin), the build command, the
  Node version (``node --version``, remembered by the binary's stat), and
  the values of build-time variables (``VITE_*``, ``NEXT_PUBLIC_*``,
  ``REACT_APP_*``, ``NODE_ENV``) that a bundler bakes into the output.

A hit reuses ``<cache>/<key>/dist`` as it is: the deploy ships from there, and
the entry's ``entry.json`` already holds the dist's manifest, so nothing is
re-hashed. Entries are immutable once renamed into place (inserted by an
atomic rename), and the ``keep`` most recently used survive eviction.

File hashes go through :class:`HashMemo`: a file whose (path, size, mtime_ns,
inode) did not change is not read again, as git's index does. A file modified
within :data:`RACY_S` of the hash is not remembered (git's "racily clean"
problem: a write in the same timestamp tick would go unseen).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import secrets
import shutil
import stat
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from adapto_ops.deploy.manifest import Manifest, build_manifest, from_json, to_json

CACHE_DIR = ".adapto/build-cache"
KEEP = 3
KEY_VERSION = b"adapto-build-key-1\0"
LOCKFILES = ("package-lock.json", "npm-shrinkwrap.json", "yarn.lock", "pnpm-lock.yaml",
             "bun.lockb", "bun.lock")
BUILD_ENV_PREFIXES = ("VITE_", "NEXT_PUBLIC_", "REACT_APP_")
BUILD_ENV_NAMES = ("NODE_ENV",)
RACY_S = 2.0
MEMO_FILE = "hash-memo.json"
MEMO_MAX = 20_000  # entries; beyond this, those not used by this run are dropped


class HashMemo:
    """SHA-256 of files, remembered by (path, size, mtime_ns, inode) in a JSON file."""

    def __init__(self, path: Path | None) -> None:
        self.path = path
        self.files: dict[str, list[object]] = {}
        self.extra: dict[str, object] = {}
        self.used: set[str] = set()
        self.dirty = False
        if path is not None:
            try:
                data = json.loads(path.read_text())
                self.files = dict(data.get("files", {}))
                self.extra = dict(data.get("extra", {}))
            except (OSError, ValueError, AttributeError):
                pass  # a missing or damaged memo only costs a re-hash

    def sha256(self, path: Path, info: os.stat_result | None = None) -> str:
        """The file's SHA-256, read only if its stat differs from the remembered one."""
        info = info or path.stat()
        key = str(path)
        sig = [info.st_size, info.st_mtime_ns, info.st_ino]
        self.used.add(key)
        known = self.files.get(key)
        if known is not None and known[:3] == sig:
            return str(known[3])
        digest = hashlib.sha256()
        with path.open("rb") as handle:
            while chunk := handle.read(1 << 20):
                digest.update(chunk)
        value = digest.hexdigest()
        if time.time_ns() - info.st_mtime_ns > RACY_S * 1e9:
            self.files[key] = [*sig, value]
            self.dirty = True
        elif key in self.files:
            del self.files[key]
            self.dirty = True
        return value

    def save(self) -> None:
        """Write the memo atomically (a concurrent deploy reads the old or the new one)."""
        if self.path is None or not self.dirty:
            return
        if len(self.files) > MEMO_MAX:
            self.files = {k: v for k, v in self.files.items() if k in self.used}
        _write_atomic(self.path, json.dumps({"files": self.files, "extra": self.extra}))
        self.dirty = False


def _write_atomic(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}")
    tmp.write_text(text)
    os.replace(tmp, path)


def node_version(memo: HashMemo) -> str:
    """`node --version` of the node on PATH; run again only when that binary changed."""
    found = shutil.which("node")
    if not found:
        return "no node"
    real = os.path.realpath(found)
    try:
        info = os.stat(real)
    except OSError:
        return "no node"
    sig = [real, info.st_size, info.st_mtime_ns, info.st_ino]
    known = memo.extra.get("node")
    if isinstance(known, list) and known[:4] == sig:
        return str(known[4])
    try:
        proc = subprocess.run([real, "--version"], capture_output=True, text=True, timeout=30)
        version = proc.stdout.strip() or f"exit {proc.returncode}"
    except (OSError, subprocess.TimeoutExpired) as exc:
        version = f"unknown ({type(exc).__name__})"
    memo.extra["node"] = [*sig, version]
    memo.dirty = True
    return version


def source_files(source: Path, dist: str) -> tuple[list[str], str]:
    """The build's input files, relative to ``source``, and how they were found ("git"|"walk").

    ``node_modules``, the dist folder and ``.adapto`` are never inputs, whatever
    the ignore files say (the lockfile stands for node_modules).
    """
    dist_rel = Path(dist).as_posix().strip("/") or "dist"
    try:
        proc = subprocess.run(
            ["git", "ls-files", "-co", "--exclude-standard", "-z",
             "-x", "node_modules", "-x", ".adapto", "-x", f"/{dist_rel}"],
            cwd=source, capture_output=True, timeout=60,
        )
        names = [n for n in proc.stdout.decode(errors="surrogateescape").split("\0") if n] \
            if proc.returncode == 0 else []
    except (OSError, subprocess.TimeoutExpired):
        names = []
    if names:
        prefix = dist_rel + "/"
        return sorted(n for n in names if not n.startswith(prefix)
                      and "/node_modules/" not in f"/{n}"), "git"
    found: list[str] = []
    for dirpath, dirnames, filenames in os.walk(source):
        rel_dir = Path(dirpath).relative_to(source).as_posix()
        under = "" if rel_dir == "." else rel_dir + "/"
        dirnames[:] = [d for d in dirnames if d != "node_modules" and not d.startswith(".")
                       and under + d != dist_rel]
        found += [under + name for name in filenames]
    return sorted(found), "walk"


@dataclass(frozen=True)
class BuildKey:
    key: str  # 64 hex
    files: int  # how many source files went into it
    how: str  # "git" or "walk"

    @property
    def short(self) -> str:
        return self.key[:12]


def build_key(source: Path, command: str, dist: str, memo: HashMemo,
              environ: dict[str, str] | None = None) -> BuildKey:
    """The cache key of building ``source`` with ``command`` (see the module's docstring)."""
    environ = dict(os.environ) if environ is None else environ
    digest = hashlib.sha256(KEY_VERSION)
    digest.update(b"command\0" + command.encode() + b"\0")
    digest.update(b"node\0" + node_version(memo).encode() + b"\0")
    for name in LOCKFILES:
        path = source / name
        if path.is_file():
            digest.update(b"lock\0" + name.encode() + b"\0" + memo.sha256(path).encode())
    for name in sorted(environ):
        if name.startswith(BUILD_ENV_PREFIXES) or name in BUILD_ENV_NAMES:
            value = hashlib.sha256(environ[name].encode()).hexdigest()  # values never stored
            digest.update(b"env\0" + name.encode() + b"=" + value.encode() + b"\0")
    names, how = source_files(source, dist)
    dotenv = sorted(p.name for p in source.glob(".env*") if p.is_file())
    for rel in sorted(set(names) | set(dotenv)):
        path = source / rel
        try:
            info = path.lstat()
        except OSError:
            digest.update(b"gone\0" + rel.encode() + b"\0")  # tracked, deleted in the tree
            continue
        if stat.S_ISLNK(info.st_mode):
            digest.update(b"link\0" + rel.encode() + b"\0" + os.readlink(path).encode() + b"\0")
        elif stat.S_ISREG(info.st_mode):
            mode = b"x" if info.st_mode & 0o111 else b"-"
            digest.update(b"file\0" + rel.encode() + b"\0" + mode
                          + memo.sha256(path, info).encode() + b"\0")
    return BuildKey(digest.hexdigest(), len(names), how)


@dataclass(frozen=True)
class CachedBuild:
    """A cached dist: its folder and its manifest (paths relative to the dist)."""

    key: str
    dist: Path
    manifest: Manifest


class BuildCache:
    """``<root>/<key>/{dist/, entry.json}``; the ``keep`` most recently used are kept."""

    def __init__(self, root: Path, keep: int = KEEP) -> None:
        self.root = root
        self.keep = keep

    def get(self, key: str) -> CachedBuild | None:
        """The entry for ``key`` if it is whole (each file there with its recorded size)."""
        entry = self.root / key
        try:
            data = json.loads((entry / "entry.json").read_text())
            manifest = from_json(data["manifest"])
        except (OSError, ValueError, KeyError, TypeError):
            return None
        dist = entry / "dist"
        for rel, e in manifest.items():
            try:
                if (dist / rel).stat().st_size != e.size:
                    return None
            except OSError:
                return None
        with contextlib.suppress(OSError):
            os.utime(entry)  # most recently used: eviction goes by this time
        return CachedBuild(key, dist, manifest)

    def put(self, key: str, dist: Path, memo: HashMemo | None = None) -> CachedBuild:
        """Copy ``dist`` in as the entry for ``key`` (atomic rename), then evict old entries.

        A copy, not hard links: a later build that rewrites a file in place must
        not change a cached entry under the deploy that ships it.
        """
        self.root.mkdir(parents=True, exist_ok=True)
        tmp = self.root / f".tmp-{key[:12]}-{os.getpid()}-{secrets.token_hex(4)}"
        try:
            shutil.copytree(dist, tmp / "dist", symlinks=True)
            manifest = dist_manifest(tmp / "dist", memo)
            (tmp / "entry.json").write_text(json.dumps({
                "key": key, "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                "manifest": to_json(manifest)}))
            try:
                os.rename(tmp, self.root / key)
            except OSError:
                # Another deploy inserted the same key first: its entry is as good.
                shutil.rmtree(tmp, ignore_errors=True)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        self.evict()
        found = self.get(key)
        if found is None:
            raise OSError(f"build cache entry {self.root / key} vanished after insert")
        return found

    def entries(self) -> list[Path]:
        """Entries, most recently used first."""
        try:
            found = [p for p in self.root.iterdir()
                     if p.is_dir() and not p.name.startswith(".")]
        except OSError:
            return []
        return sorted(found, key=lambda p: p.stat().st_mtime_ns, reverse=True)

    def evict(self) -> list[str]:
        """Drop all but the ``keep`` most recently used entries; returns the keys dropped."""
        dropped = []
        for old in self.entries()[self.keep:]:
            # Renamed away first, so a reader never sees a half-deleted entry.
            trash = self.root / f".trash-{old.name[:12]}-{secrets.token_hex(4)}"
            try:
                os.rename(old, trash)
            except OSError:
                continue
            shutil.rmtree(trash, ignore_errors=True)
            dropped.append(old.name)
        return dropped


def dist_manifest(dist: Path, memo: HashMemo | None = None) -> Manifest:
    """Manifest of a dist folder, paths relative to it, as a deploy of that folder sees it."""
    manifest, _ = build_manifest({"d": dist}, memo)
    return {rel[2:]: entry for rel, entry in manifest.items()}
