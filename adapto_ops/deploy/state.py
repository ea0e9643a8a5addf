"""What a host holds: its releases, the lock, and the identities of a release's content.

Pure data and parsing (no I/O): the read of ``releases/`` and the lock file
(:func:`parse_state`), the hashes that tell whether anything changed, and which
releases a deploy may prune.
"""

from __future__ import annotations

import hashlib
import json
import os
import socket
from dataclasses import dataclass, field
from typing import Any

from adapto_ops.deploy.manifest import Manifest, UploadPlan, to_json
from adapto_ops.errors import AdaptoError, OperationFailed
from adapto_ops.render.configs import RenderedFile

ECOSYSTEM = "ecosystem.config.js"
NGINX_COPY = "nginx-site.conf"


class HealthFailed(OperationFailed):
    """The new release did not pass its health checks."""


class LockHeld(AdaptoError):
    """Another deploy holds the host's lock (exit code 1: nothing was wrong with the input)."""

    exit_code = 1


@dataclass(frozen=True)
class ReleaseInfo:
    id: str
    complete: bool
    meta: dict[str, Any] | None
    live: bool = False

    @property
    def backend_release(self) -> str:
        return str((self.meta or {}).get("backend_release") or self.id)


@dataclass(frozen=True)
class HostState:
    current: str | None
    releases: list[ReleaseInfo]
    lock: str | None

    def release(self, release_id: str | None) -> ReleaseInfo | None:
        return next((r for r in self.releases if r.id == release_id), None)


@dataclass
class Prepared:
    release_id: str
    previous: ReleaseInfo | None
    plan: UploadPlan
    bytes_sent: int
    restart_backend: bool
    backend_release: str
    nginx_file: RenderedFile
    files: dict[str, str] = field(default_factory=dict)  # remote path -> new text (for diffs)
    unchanged_from: str | None = None  # set when the live release already has this content
    deps_hash: str | None = None
    env_text: str = ""  # the env file with real values: compared, never printed
    dist_changed: bool = True  # the frontend differs from the previous release's

    def as_release(self) -> ReleaseInfo:
        """The new release as the state listing will show it once it is live."""
        meta = {"backend_release": self.backend_release, "deps_hash": self.deps_hash}
        return ReleaseInfo(self.release_id, True, meta, True)


def parse_state(text: str) -> HostState:
    """The output of :func:`adapto_ops.commands.release.read_state` as a HostState."""
    head, marker, lock = text.partition("\nLOCK\n")  # LOCK is never the first line
    current: str | None = None
    releases = []
    for line in head.splitlines():
        fields = line.split("\t", 4)
        if fields[0] == "CUR" and len(fields) == 2:
            current = fields[1] or None
        elif fields[0] == "REL" and len(fields) == 5:
            try:
                meta = json.loads(fields[4]) if fields[4] else None
            except json.JSONDecodeError:
                meta = None  # a damaged meta: the release is listed, not trusted
            releases.append(ReleaseInfo(fields[1], fields[2] == "1",
                                        meta if isinstance(meta, dict) else None,
                                        fields[3] == "1"))
    releases.sort(key=lambda r: r.id)
    return HostState(current, releases, lock if marker and lock else None)

def dist_hash(manifest: Manifest) -> str:
    """Identity of the frontend alone: equal hashes need no nginx reload on a switch."""
    dist = {p: e for p, e in manifest.items() if p.startswith("dist/")}
    return hashlib.sha256(json.dumps(to_json(dist), sort_keys=True).encode()).hexdigest()[:24]


def content_hash(manifest: Manifest, deps_hash: str | None, configs: list[str]) -> str:
    """Identity of everything a release puts live; equal hashes mean nothing would change."""
    digest = hashlib.sha256(json.dumps(to_json(manifest), sort_keys=True).encode())
    digest.update(str(deps_hash).encode())
    for text in configs:
        digest.update(b"\0" + text.encode())
    return digest.hexdigest()[:24]

def prune_plan(state: HostState, new: ReleaseInfo, keep: int) -> tuple[list[str], list[str]]:
    """Releases to delete and dependency hashes to keep, after ``new`` went live.

    Kept: the newest ``keep`` complete releases, the live one, and any release
    whose backend a kept release runs from (a frontend-only deploy reuses it).
    Incomplete releases (a cut upload) are dropped.
    """
    releases = [r for r in state.releases if r.id != new.id] + [new]
    complete = sorted(r.id for r in releases if r.complete)
    kept = set(complete[-keep:]) | {new.id}
    kept |= {r.backend_release for r in releases if r.id in kept}
    doomed = [r.id for r in releases if r.id not in kept]
    hashes = sorted({str((r.meta or {}).get("deps_hash")) for r in releases
                     if r.id in kept and (r.meta or {}).get("deps_hash")})
    return doomed, hashes

def lock_holder_is_dead(text: str) -> bool:
    """True only for a lock taken from this machine by a process that no longer exists."""
    try:
        info = json.loads(text)
        who, pid = str(info["who"]), int(info["pid"])
    except (json.JSONDecodeError, KeyError, TypeError, ValueError):
        return False
    if who.rpartition("@")[2] != socket.gethostname() or pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False  # alive, owned by someone else
    return False


def describe_lock(text: str) -> str:
    try:
        info = json.loads(text)
    except (json.JSONDecodeError, TypeError):
        return f"locked ({text.strip()[:120] or 'unreadable lock file'})"
    return (f"locked by {info.get('who', '?')} (pid {info.get('pid', '?')}) since "
            f"{info.get('since', '?')} for `{info.get('command', 'deploy')}`")
