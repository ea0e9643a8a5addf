"""The frontend build cache: its key, its memo, its entries, and `collect` using it.

No server: real git work trees and real files in pytest's temporary folders; the
"build" is a shell command that counts its runs in a file, so a test sees whether
it ran.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from pathlib import Path

import pytest
import yaml

from adapto_ops.deploy import build_cache as bc
from adapto_ops.deploy.artifacts import collect
from adapto_ops.inventory.loader import parse_inventory
from tests.e2e_support import adapto
from tests.operate_sandbox import Slot, inventory_data

COMMAND = "npm run build"


def git(cwd: Path, *args: str) -> None:
    subprocess.run(["git", *args], cwd=cwd, check=True, capture_output=True,
                   env={**os.environ, "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@t",
                        "GIT_COMMITTER_NAME": "t", "GIT_COMMITTER_EMAIL": "t@t"})


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    """A git work tree with a frontend in `web/`: sources, lockfile, an ignored file, dist."""
    root = tmp_path / "repo"
    web = root / "web"
    (web / "src").mkdir(parents=True)
    (root / ".gitignore").write_text("node_modules/\ndist/\n*.log\n.env.local\n")
    (web / "src" / "main.js").write_text("console.log(1)\n")
    (web / "index.html").write_text("<div id=root></div>\n")
    (web / "package-lock.json").write_text('{"lockfileVersion": 3}\n')
    (web / "node_modules" / "vite").mkdir(parents=True)
    (web / "node_modules" / "vite" / "index.js").write_text("x\n")
    (web / "dist").mkdir()
    (web / "dist" / "index.html").write_text("built\n")
    (web / "debug.log").write_text("ignored\n")
    git(root, "init", "-q")
    git(root, "add", "-A")
    git(root, "commit", "-qm", "init")
    return web


def key(source: Path, memo: bc.HashMemo, command: str = COMMAND,
        environ: dict[str, str] | None = None) -> str:
    return bc.build_key(source, command, "dist", memo, environ or {}).key


@pytest.fixture
def memo(tmp_path: Path) -> bc.HashMemo:
    return bc.HashMemo(tmp_path / "memo.json")


def test_inputs_are_git_files_without_ignored_dist_or_node_modules(repo: Path) -> None:
    (repo / "src" / "new.js").write_text("untracked, not ignored\n")
    names, how = bc.source_files(repo, "dist")
    assert how == "git"
    assert names == ["index.html", "package-lock.json", "src/main.js", "src/new.js"]


def test_outside_git_the_walk_skips_node_modules_dist_and_dot_folders(tmp_path: Path) -> None:
    src = tmp_path / "web"
    for rel in ("a.js", "sub/b.js", "node_modules/x.js", "dist/index.html", ".cache/c",
                "sub/node_modules/y.js", "sub/dist/kept.js"):
        (src / rel).parent.mkdir(parents=True, exist_ok=True)
        (src / rel).write_text(rel)
    names, how = bc.source_files(src, "dist")
    assert how == "walk"
    assert names == ["a.js", "sub/b.js", "sub/dist/kept.js"]


@pytest.mark.parametrize("change", ["tracked", "untracked", "lockfile", "dotenv-local",
                                    "deleted", "mode"])
def test_key_changes_with_each_input(repo: Path, memo: bc.HashMemo, change: str) -> None:
    before = key(repo, memo)
    assert key(repo, memo) == before  # stable
    if change == "tracked":
        (repo / "src" / "main.js").write_text("console.log(2)\n")
    elif change == "untracked":
        (repo / "src" / "extra.js").write_text("new file git does not ignore\n")
    elif change == "lockfile":
        (repo / "package-lock.json").write_text('{"lockfileVersion": 3, "x": 1}\n')
    elif change == "dotenv-local":  # ignored by git, yet Vite reads it at build time
        (repo / ".env.local").write_text("VITE_API=https://example.invalid\n")
    elif change == "deleted":
        (repo / "src" / "main.js").unlink()
    elif change == "mode":
        (repo / "src" / "main.js").chmod(0o755)
    assert key(repo, memo) != before


def test_key_changes_with_command_and_build_variables(repo: Path, memo: bc.HashMemo) -> None:
    base = key(repo, memo)
    assert key(repo, memo, "npm ci && npm run build") != base
    assert key(repo, memo, environ={"VITE_API_URL": "a"}) != base
    assert key(repo, memo, environ={"VITE_API_URL": "a"}) != key(
        repo, memo, environ={"VITE_API_URL": "b"})
    assert key(repo, memo, environ={"UNRELATED": "a"}) == base


def test_key_ignores_ignored_files_dist_and_node_modules(repo: Path, memo: bc.HashMemo) -> None:
    before = key(repo, memo)
    (repo / "debug.log").write_text("changed, but git ignores it\n")
    (repo / "dist" / "index.html").write_text("a different build output\n")
    (repo / "dist" / "new.js").write_text("more output\n")
    (repo / "node_modules" / "vite" / "index.js").write_text("y\n")
    assert key(repo, memo) == before


def fake_node(folder: Path, version: str) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    node = folder / "node"
    node.write_text(f"#!/bin/sh\necho {version}\n")
    node.chmod(0o755)
    return folder


def test_key_changes_with_the_node_version(repo: Path, memo: bc.HashMemo, tmp_path: Path,
                                           monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", f"{fake_node(tmp_path / 'n18', 'v18.0.0')}:/usr/bin:/bin")
    with_18 = key(repo, memo)
    monkeypatch.setenv("PATH", f"{fake_node(tmp_path / 'n22', 'v22.1.0')}:/usr/bin:/bin")
    assert key(repo, memo) != with_18
    assert bc.node_version(memo) == "v22.1.0"


def test_node_version_is_remembered_until_the_binary_changes(tmp_path: Path,
                                                             memo: bc.HashMemo,
                                                             monkeypatch: pytest.MonkeyPatch
                                                             ) -> None:
    folder = fake_node(tmp_path / "bin", "v20.1.0")
    monkeypatch.setenv("PATH", f"{folder}:/usr/bin:/bin")
    assert bc.node_version(memo) == "v20.1.0"
    node = folder / "node"
    info = node.stat()
    # Same stat, other output: the remembered answer is used (node is not run again).
    node.write_text("#!/bin/sh\necho v99.9.9\n")
    os.utime(node, ns=(info.st_atime_ns, info.st_mtime_ns))
    assert bc.node_version(memo) == "v20.1.0"
    node.write_text("#!/bin/sh\necho v21.0.00\n")  # another size: run again
    assert bc.node_version(memo) == "v21.0.00"


def test_memo_skips_unchanged_files_and_survives_a_restart(tmp_path: Path) -> None:
    path = tmp_path / "f.js"
    path.write_text("aaaa")
    old = time.time() - 60
    os.utime(path, (old, old))
    memo = bc.HashMemo(tmp_path / "memo.json")
    first = memo.sha256(path)
    memo.save()
    # Rewritten with the same size and mtime (inode kept): the memo's answer stands,
    # which shows the file was not read again. A real edit moves mtime.
    info = path.stat()
    path.write_text("bbbb")
    os.utime(path, ns=(info.st_atime_ns, info.st_mtime_ns))
    assert bc.HashMemo(tmp_path / "memo.json").sha256(path) == first
    path.write_text("cccc")  # a normal write: mtime changes
    assert bc.HashMemo(tmp_path / "memo.json").sha256(path) != first


def test_memo_does_not_remember_racily_clean_files(tmp_path: Path) -> None:
    path = tmp_path / "f.js"
    path.write_text("fresh")  # modified now: within RACY_S
    memo = bc.HashMemo(tmp_path / "memo.json")
    memo.sha256(path)
    assert str(path) not in memo.files


def dist_folder(tmp_path: Path, name: str, text: str) -> Path:
    dist = tmp_path / "builds" / name
    (dist / "assets").mkdir(parents=True)
    (dist / "index.html").write_text(text)
    (dist / "assets" / "app.js").write_text(text * 3)
    return dist


def test_cache_round_trip_and_entry_is_a_copy(tmp_path: Path) -> None:
    cache = bc.BuildCache(tmp_path / "cache")
    dist = dist_folder(tmp_path, "one", "one")
    entry = cache.put("a" * 64, dist)
    assert sorted(entry.manifest) == ["assets/app.js", "index.html"]
    assert entry.dist == tmp_path / "cache" / ("a" * 64) / "dist"
    # The build rewrites its output in place: the cached entry must not change.
    (dist / "index.html").write_text("rewritten")
    again = cache.get("a" * 64)
    assert again is not None and (again.dist / "index.html").read_text() == "one"
    assert cache.get("b" * 64) is None
    assert not [p for p in (tmp_path / "cache").iterdir() if p.name.startswith(".")]


def test_cache_keeps_the_three_most_recently_used(tmp_path: Path) -> None:
    cache = bc.BuildCache(tmp_path / "cache", keep=3)
    keys = [c * 64 for c in "abcd"]
    for i, k in enumerate(keys[:3]):
        cache.put(k, dist_folder(tmp_path, k[:1], k))
        os.utime(tmp_path / "cache" / k, (1000 + i, 1000 + i))
    assert cache.get(keys[0]) is not None  # "a" is now the most recently used
    cache.put(keys[3], dist_folder(tmp_path, "d", "d"))
    left = {p.name for p in cache.entries()}
    assert left == {keys[0], keys[2], keys[3]}  # "b", least recently used, went


def test_a_damaged_entry_is_a_miss(tmp_path: Path) -> None:
    cache = bc.BuildCache(tmp_path / "cache")
    entry = cache.put("c" * 64, dist_folder(tmp_path, "c", "c"))
    (entry.dist / "assets" / "app.js").write_text("truncated")
    assert cache.get("c" * 64) is None


# --- collect(): the deploy's local side with the cache ------------------------------------

BUILD = ("echo run >> ../builds.txt && mkdir -p dist/assets && cp src/page.html dist/index.html"
         " && cp src/page.html dist/assets/app.js")


def loaded_for(tmp_path: Path) -> tuple[object, object, Path]:
    """An inventory (not parsed from the repository's file) whose frontend build counts runs."""
    source = tmp_path / "proj" / "web"
    (source / "src").mkdir(parents=True)
    (source / "src" / "page.html").write_text("<p>v1</p>\n")
    data = inventory_data(tmp_path / "box", Slot("127.0.0.201", 2290, 8290, 8790, (3290, 3291)))
    env = data["environments"]["op"]
    env["frontend"] = {"source": "web", "build": BUILD, "dist": "dist"}
    path = tmp_path / "proj" / "inventory.yaml"
    path.write_text(yaml.safe_dump(data))
    loaded = parse_inventory(path.read_text(), path)
    return loaded, loaded.environment("op"), source


def runs(source: Path) -> int:
    counter = source.parent / "builds.txt"
    return len(counter.read_text().splitlines()) if counter.exists() else 0


def test_collect_builds_once_then_ships_from_the_cache(tmp_path: Path) -> None:
    loaded, env, source = loaded_for(tmp_path)
    first, info = collect(loaded, env, "frontend", build=True)  # type: ignore[arg-type]
    assert (info.cache, runs(source)) == ("built", 1)
    second, info2 = collect(loaded, env, "frontend", build=True)  # type: ignore[arg-type]
    assert (info2.cache, runs(source)) == ("hit", 1)
    assert info2.describe() == f"cached (key {info.key[:12]})"  # type: ignore[index]
    assert second.manifest == first.manifest
    cache_root = tmp_path / "proj" / ".adapto" / "build-cache"
    assert all(str(p).startswith(str(cache_root)) for p in second.sources.values())
    # --rebuild builds even on a hit; a source change is a miss.
    _, info3 = collect(loaded, env, "frontend", build=True, rebuild=True)  # type: ignore[arg-type]
    assert (info3.cache, runs(source)) == ("rebuilt", 2)
    (source / "src" / "page.html").write_text("<p>v2</p>\n")
    third, info4 = collect(loaded, env, "frontend", build=True)  # type: ignore[arg-type]
    assert (info4.cache, runs(source)) == ("built", 3)
    assert third.manifest["dist/index.html"] != first.manifest["dist/index.html"]
    # Back to v1: the first build is still cached.
    (source / "src" / "page.html").write_text("<p>v1</p>\n")
    again, info5 = collect(loaded, env, "frontend", build=True)  # type: ignore[arg-type]
    assert (info5.cache, runs(source)) == ("hit", 3)
    assert again.manifest == first.manifest


def test_collect_skip_build_ships_the_source_dist(tmp_path: Path) -> None:
    loaded, env, source = loaded_for(tmp_path)
    (source / "dist").mkdir()
    (source / "dist" / "index.html").write_text("hand made\n")
    artifacts, info = collect(loaded, env, "frontend", build=False)  # type: ignore[arg-type]
    assert info.cache == "skipped" and runs(source) == 0
    assert artifacts.sources["dist/index.html"] == source / "dist" / "index.html"


def test_a_failed_build_is_not_cached(tmp_path: Path) -> None:
    loaded, env, source = loaded_for(tmp_path)
    (source / "src" / "page.html").unlink()  # cp fails
    with pytest.raises(Exception, match="failed"):
        collect(loaded, env, "frontend", build=True)  # type: ignore[arg-type]
    assert bc.BuildCache(tmp_path / "proj" / ".adapto" / "build-cache").entries() == []


def test_rebuild_and_skip_build_together_is_bad_input() -> None:
    result = adapto("deploy", "frontend", "-e", "sandbox", "--rebuild", "--skip-build")
    assert result.returncode == 2
    assert result.stderr.strip().startswith("error: --rebuild and --skip-build")


def test_git_missing_falls_back_to_the_walk(repo: Path, memo: bc.HashMemo,
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    with_git = bc.source_files(repo, "dist")
    monkeypatch.setenv("PATH", "/nonexistent")
    names, how = bc.source_files(repo, "dist")
    assert how == "walk" and "src/main.js" in names and "debug.log" in names
    assert with_git[1] == "git"
    assert shutil.which("git") is None
