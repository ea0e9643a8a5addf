"""The backend build cache without SSH: the key, the lookup, and the copy apply_bundle makes.

The shell script is run with bash in a temporary folder, so the copy's effect on
files (a real copy, the cached release untouched) is checked for real.
"""

from __future__ import annotations

import io
import os
import shutil
import subprocess
import tarfile
from pathlib import Path

import pytest

from adapto_ops.commands import release as rel
from adapto_ops.deploy.backend_build import build_key, cached_build
from adapto_ops.deploy.manifest import EXCLUDED_NAMES, Entry, build_manifest
from adapto_ops.deploy.state import HostState, ReleaseInfo
from adapto_ops.layout import ReleaseLayout

MANIFEST = {"backend/app/api/health/route.js": Entry("a" * 64, 10, 0o644),
            "backend/package.json": Entry("b" * 64, 20, 0o644),
            "dist/index.html": Entry("c" * 64, 30, 0o644)}


def key(**change: object) -> str:
    args: dict[str, object] = {"manifest": MANIFEST, "deps_hash": "d1",
                               "command": "npm run build", "node_version": "v20.20.2"}
    return build_key(**(args | change))  # type: ignore[arg-type]


def test_key_changes_with_each_input_and_only_with_those() -> None:
    base = key()
    assert len(base) == 24 and key() == base
    changed_file = MANIFEST | {"backend/package.json": Entry("e" * 64, 20, 0o644)}
    others = [key(manifest=changed_file), key(deps_hash="d2"),
              key(command="npm run build:prod"), key(node_version="v22.1.0"),
              key(node_version=None), key(env_text="NEXT_PUBLIC_API=x\n")]
    assert base not in others and len(set(others)) == len(others)
    # The frontend is not an input of the backend's build.
    frontend_changed = MANIFEST | {"dist/index.html": Entry("f" * 64, 30, 0o644)}
    assert key(manifest=frontend_changed) == base


def test_cached_build_is_the_newest_complete_release_with_the_key() -> None:
    def info(rid: str, complete: bool, build_key: str | None) -> ReleaseInfo:
        return ReleaseInfo(rid, complete, {"build_key": build_key})

    state = HostState("r3", [info("r1", True, "k"), info("r2", True, "k"),
                             info("r3", True, "other"), info("r4", False, "k")], None)
    assert cached_build(state, "k") == "r2"  # r4's build never completed
    assert cached_build(state, "none") is None
    assert cached_build(HostState(None, [ReleaseInfo("r1", True, None)], None), "k") is None


def test_a_local_next_build_is_not_shipped(tmp_path: Path) -> None:
    assert ".next" in EXCLUDED_NAMES
    (tmp_path / ".next").mkdir()
    (tmp_path / ".next" / "BUILD_ID").write_text("local\n")
    (tmp_path / "package.json").write_text("{}\n")
    manifest, _ = build_manifest({"backend": tmp_path})
    assert list(manifest) == ["backend/package.json"]


def _tar(files: dict[str, str]) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        for name, text in files.items():
            data = text.encode()
            info = tarfile.TarInfo(name)
            info.size, info.mode = len(data), 0o644
            tar.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


@pytest.mark.skipif(shutil.which("tar") is None, reason="tar is not installed")
def test_apply_bundle_copies_the_cached_release_backend_never_linking_it(tmp_path: Path) -> None:
    layout = ReleaseLayout(str(tmp_path))
    releases = tmp_path / "releases"
    # r1 built from the sources we deploy again; r2 (current) from other sources.
    for rid, source in (("r1", "v1"), ("r2", "v2")):
        backend = releases / rid / "backend"
        (backend / ".next").mkdir(parents=True)
        (backend / ".next" / "BUILD_ID").write_text(f"build-{rid}\n")
        (backend / "route.js").write_text(source)
        (backend / "RELEASE").write_text(f"{rid}\n")
        (releases / rid / "dist").mkdir()
        (releases / rid / "dist" / "index.html").write_text("page")
    cached_id = releases / "r1" / "backend" / ".next" / "BUILD_ID"
    before = (cached_id.stat().st_ino, cached_id.stat().st_mtime_ns)

    script = rel.apply_bundle(layout, "r3", "r2", link_backend=False, deps_hash=None,
                              deps_dir="node_modules", finish=True, backend_from="r1")
    blob = _tar({"releases/r3/backend/route.js": "v1", "releases/r3/backend/RELEASE": "r3\n"})
    result = subprocess.run(["bash", "-c", script], input=blob, capture_output=True, timeout=30)
    assert result.returncode == 0, result.stderr
    assert b"READY" in result.stdout

    new = releases / "r3"
    new_id = new / "backend" / ".next" / "BUILD_ID"
    assert new_id.read_text() == "build-r1\n"  # r1's build, not r2's
    assert (new / "backend" / "route.js").read_text() == "v1"
    assert (new / "backend" / "RELEASE").read_text() == "r3\n"
    assert (new / "dist" / "index.html").stat().st_ino == (
        releases / "r2" / "dist" / "index.html").stat().st_ino  # the frontend: hard links
    assert new_id.stat().st_ino != cached_id.stat().st_ino and new_id.stat().st_nlink == 1
    assert (cached_id.stat().st_ino, cached_id.stat().st_mtime_ns) == before
    assert (releases / "r1" / "backend" / "RELEASE").read_text() == "r1\n"
    assert (new / rel.COMPLETE_MARK).exists()
    assert not os.path.islink(new / "backend")
