"""The backend build cache: `next build` (or any backend build) runs once per input.

A backend with a build step is built on the host, inside its release (Next.js
writes ``.next/`` there). When a release built from exactly the same inputs is
still on the host, its build is reused: the new release's backend starts as a
real copy (``cp -a``) of that release's backend, so the build output is never
shared or written through, and the build command does not run.

The key is what decides the build's output: the backend's files (their hashes
from the deploy's manifest), the dependencies (``deps_hash``: lockfile, package
manifest and install command), the build command, the host's Node version (one
`node --version` when a build is due), and the env file (`next
build` reads `.env` and inlines NEXT_PUBLIC_* values; only its hash is kept).
"""

from __future__ import annotations

import hashlib
import json
from typing import TYPE_CHECKING

from adapto_ops.deploy.manifest import Manifest, to_json

if TYPE_CHECKING:
    from adapto_ops.deploy.state import HostState


def build_key(manifest: Manifest, deps_hash: str | None, command: str,
              node_version: str | None, env_text: str = "") -> str:
    """Identity of a backend build's inputs (24 hex digits)."""
    backend = {p: e for p, e in manifest.items() if p.startswith("backend/")}
    digest = hashlib.sha256(json.dumps(to_json(backend), sort_keys=True).encode())
    for part in (str(deps_hash), command, node_version or "node?", env_text):
        digest.update(b"\0" + part.encode())
    return digest.hexdigest()[:24]


def cached_build(state: HostState, key: str) -> str | None:
    """The newest complete release on the host whose backend holds a build for ``key``.

    Only complete releases count: a release is marked complete after its build
    succeeded, so a failed or cut build is never reused.
    """
    found = [r.id for r in state.releases
             if r.complete and (r.meta or {}).get("build_key") == key]
    return max(found) if found else None
