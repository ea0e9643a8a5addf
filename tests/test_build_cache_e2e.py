"""The build cache end to end: `deploy all` twice with nothing changed builds once.

A sandbox of its own on 127.0.0.201 (SSH 2211, HTTPS 8711, backends 3211-3212,
PostgreSQL 5442), purged at the end. The frontend's build command is a shell
script that appends a line to a counter file and writes the dist from
``src/page.html``: the counter says whether the build ran, the page served
through nginx says which build is live.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.e2e_support import adapto, said, sandbox_marks
from tests.operate_sandbox import OpBox, Slot, deployed_sandbox

pytestmark = [pytest.mark.e2e, pytest.mark.slow, *sandbox_marks()]

SLOT = Slot("127.0.0.201", 2211, 8211, 8711, (3211, 3212))
BUILD_SH = """set -e
echo run >> ../builds.txt
rm -rf dist
mkdir -p dist/assets
cp src/app.js dist/assets/app-1.js
{ echo '<!doctype html><html><head><script type="module" src="/assets/app-1.js"></script>'
  echo '</head><body>'; cat src/page.html; echo '</body></html>'; } > dist/index.html
"""


def adjust(env: dict[str, Any]) -> None:
    env["frontend"]["build"] = "sh build.sh"
    env["sandbox"]["postgres_port"] = 5442


@pytest.fixture(scope="module")
def box(tmp_path_factory: pytest.TempPathFactory) -> Iterator[OpBox]:
    with deployed_sandbox(tmp_path_factory.mktemp("buildcache"), SLOT, adjust=adjust) as box:
        source = box.base / "frontend"
        (source / "src").mkdir()
        (source / "src" / "page.html").write_text("<p>page v1</p>\n")
        (source / "src" / "app.js").write_text("document.title = 'v1';\n")
        (source / "build.sh").write_text(BUILD_SH)
        yield box


def builds(box: OpBox) -> int:
    counter = box.base / "builds.txt"
    return len(counter.read_text().splitlines()) if counter.exists() else 0


def deploy(box: OpBox, *extra: str) -> tuple[list[dict[str, Any]], str]:
    result = box.cli("deploy", "all", "--yes", "--json", *extra)
    assert result.returncode == 0, said(result)
    events = [json.loads(line) for line in result.stdout.splitlines() if line.startswith("{")]
    outcome = next(e for e in events if e["kind"] == "result")["data"]["hosts"][0]["result"]
    return events, outcome


def build_event(events: list[dict[str, Any]]) -> dict[str, Any]:
    return next(e for e in events if e["step"] == "build" and e["kind"] == "ok")


@pytest.mark.timeout(300)
def test_second_deploy_all_uses_the_cached_build(box: OpBox) -> None:
    events, outcome = deploy(box)
    assert builds(box) == 1 and outcome == "ok"
    first = build_event(events)
    assert first["data"]["cache"] == "built" and "now cached" in first["message"]
    assert "page v1" in box.get("/").text

    events, outcome = deploy(box)
    assert builds(box) == 1, "the build ran again with nothing changed"
    hit = build_event(events)
    assert re.match(r"cached \(key [0-9a-f]{12}\)", hit["message"]), hit
    assert hit["data"] == {**hit["data"], "cache": "hit", "key": first["data"]["key"]}
    assert outcome == "unchanged"
    # Unchanged still means checked: the gate ran and passed.
    assert any(e["step"] == "health" and e["kind"] == "ok" for e in events)

    # The terminal output says it in words, too.
    plain = box.cli("deploy", "all", "--yes")
    assert plain.returncode == 0, said(plain)
    assert re.search(r"build\s+cached \(key [0-9a-f]{12}\)", plain.stdout), said(plain)
    assert builds(box) == 1


@pytest.mark.timeout(300)
def test_a_source_change_builds_and_rebuild_forces(box: OpBox) -> None:
    source = box.base / "frontend"
    (source / "src" / "page.html").write_text("<p>page v2</p>\n")
    events, outcome = deploy(box)
    assert builds(box) == 2 and outcome == "ok"
    assert build_event(events)["data"]["cache"] == "built"
    assert "page v2" in box.get("/").text

    events, outcome = deploy(box, "--rebuild")
    assert builds(box) == 3
    assert build_event(events)["data"]["cache"] == "rebuilt"
    assert outcome == "unchanged"  # the same sources build the same dist

    # Back to v1: still in the cache (3 entries kept), shipped without a build.
    (source / "src" / "page.html").write_text("<p>page v1</p>\n")
    events, outcome = deploy(box)
    assert builds(box) == 3 and outcome == "ok"
    assert build_event(events)["data"]["cache"] == "hit"
    assert "page v1" in box.get("/").text
    entries = [p for p in (box.base / ".adapto" / "build-cache").iterdir()
               if p.is_dir() and not p.name.startswith(".")]
    assert len(entries) == 2


def test_cache_lives_beside_the_inventory(box: OpBox) -> None:
    cache = box.base / ".adapto" / "build-cache"
    assert (cache / "hash-memo.json").is_file()
    assert not (Path(box.base / "frontend" / "dist") / "entry.json").exists()


@pytest.mark.timeout(120)
@pytest.mark.parametrize("size", [100, 60_000, 200_000, 1_300_000])
def test_stdin_reaches_the_host_whole_on_each_path(box: OpBox, size: int) -> None:
    """Inline (<= 48 kB), here-document on the shell's channel (<= 256 kB), SFTP (more):
    the bytes arrive intact and the long-lived shell keeps working afterwards."""
    import hashlib

    from adapto_ops.deploy.session import open_transport
    from adapto_ops.selection import select

    selection = select(str(box.inventory), "op", None)
    transport = open_transport(selection, selection.targets[0])
    try:
        data = os.urandom(size)
        result = transport.run("sha256sum", stdin=data)
        assert result.stdout.split()[0] == hashlib.sha256(data).hexdigest()
        assert transport.run("echo alive").stdout == "alive\n"
    finally:
        transport.close()


@pytest.mark.timeout(120)
def test_a_failed_build_changes_nothing_and_leaves_no_lock(box: OpBox) -> None:
    """The connection opened while building is closed again; nothing reached the host."""
    def failing(env: dict[str, Any]) -> None:
        env["frontend"]["build"] = "echo 'vite: boom' >&2; exit 3"

    variant = box.write_variant("failing-build", failing)
    before = sorted(p.name for p in (box.root / "releases").iterdir())
    current = os.readlink(box.root / "current")
    result = adapto("deploy", "all", "--yes", "-e", "op", "-i", str(variant))
    assert result.returncode == 1, said(result)
    assert "frontend build" in result.stderr and "vite: boom" in result.stderr
    assert sorted(p.name for p in (box.root / "releases").iterdir()) == before
    assert os.readlink(box.root / "current") == current
    assert not (box.root / ".adapto" / "lock").exists()
