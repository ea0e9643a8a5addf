"""The pure pieces of a deploy, without SSH: command text run by a local shell,
upload plans, prune plans, release ids, probe parsing.

The shell scripts adapto sends to hosts are run here with bash in a temporary
folder, so their effect on files is checked for real (the SSH path is the
end-to-end tests' job).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from adapto_ops.commands import nginx as nginx_cmd
from adapto_ops.commands import release as rel
from adapto_ops.commands.probe import parse_probe
from adapto_ops.deploy.manifest import Entry, carried_assets, plan_upload
from adapto_ops.deploy.session import new_release_id
from adapto_ops.deploy.state import HostState, ReleaseInfo, parse_state, prune_plan
from adapto_ops.inventory.model import Nginx
from adapto_ops.layout import ReleaseLayout

NODE = shutil.which("node")


def sh(script: str, *, stdin: str = "") -> subprocess.CompletedProcess[str]:
    return subprocess.run(["bash", "-c", script], input=stdin, capture_output=True, text=True,
                          timeout=30)


# --- upload plans ------------------------------------------------------------------------


def entry(sha: str, size: int = 1) -> Entry:
    return Entry(sha, size, 0o644)


def test_plan_sends_only_changed_and_new_files() -> None:
    previous = {"dist/index.html": entry("a"), "dist/assets/x-1.js": entry("b"),
                "backend/app.py": entry("c")}
    new = {"dist/index.html": entry("a2"), "dist/assets/x-2.js": entry("d"),
           "backend/app.py": entry("c")}
    plan = plan_upload(new, previous)
    assert plan.send == ["dist/assets/x-2.js", "dist/index.html"]
    assert plan.delete == ["dist/assets/x-1.js"]
    assert plan.unchanged == 1


def test_previous_assets_are_kept_for_one_release_only() -> None:
    first = {"dist/index.html": entry("1"), "dist/assets/a-1.js": entry("a")}
    second = {"dist/index.html": entry("2"), "dist/assets/a-2.js": entry("b")}
    carried = carried_assets(first, second, "dist/assets/")
    assert carried == ["dist/assets/a-1.js"]
    assert plan_upload(second, first, keep=carried).delete == []
    # The third build: release 2 holds a-1 (carried) and a-2 (own); only a-2 is carried on.
    third = {"dist/index.html": entry("3"), "dist/assets/a-3.js": entry("c")}
    in_release_two = second | {"dist/assets/a-1.js": entry("a")}
    own_two = {p: e for p, e in in_release_two.items() if p not in carried}
    carried_again = carried_assets(own_two, third, "dist/assets/")
    assert carried_again == ["dist/assets/a-2.js"]
    plan = plan_upload(third, in_release_two, keep=carried_again)
    assert plan.delete == ["dist/assets/a-1.js"]  # two builds old: gone


# --- prune plans ---------------------------------------------------------------------------


def release(rid: str, *, complete: bool = True, backend: str | None = None,
            deps: str = "h1") -> ReleaseInfo:
    return ReleaseInfo(rid, complete, {"backend_release": backend or rid, "deps_hash": deps})


def test_prune_keeps_the_newest_and_what_they_need() -> None:
    state = HostState("r4", [release("r1", deps="old"), release("r2"),
                             release("r3", complete=False), release("r4")], None)
    # r5 is frontend-only: its instances still run r2's backend.
    new = release("r5", backend="r2")
    doomed, hashes = prune_plan(state, new, keep=2)
    assert doomed == ["r1", "r3"]  # r3 never completed (a cut upload)
    assert hashes == ["h1"]  # "old" belonged to r1 only


def test_prune_never_drops_the_live_release() -> None:
    state = HostState("r9", [release(f"r{i}") for i in range(1, 10)], None)
    doomed, _ = prune_plan(state, release("r0"), keep=2)  # an older id going live (rollback)
    # The live one stays, and so do the two newest (to roll forward again).
    assert doomed == [f"r{i}" for i in range(1, 8)]


# --- release ids ---------------------------------------------------------------------------


def test_release_ids_sort_after_every_existing_one() -> None:
    future = "29991231235959"
    state = HostState(future, [ReleaseInfo(future, True, None)], None)
    rid = new_release_id([state])
    assert len(rid) == 14 and rid > future


# --- shell scripts, run for real in a temporary folder ------------------------------------------


def test_switch_replaces_current_in_one_rename(tmp_path: Path) -> None:
    layout = ReleaseLayout(str(tmp_path))
    for rid in ("a", "b"):
        (tmp_path / "releases" / rid).mkdir(parents=True)
    (tmp_path / "shared").mkdir()
    (tmp_path / "shared" / ".env.next-b").write_text("K=v\n")
    assert sh(rel.switch(layout, "a")).returncode == 0
    assert os.readlink(tmp_path / "current") == "releases/a"
    result = sh(rel.switch(layout, "b"))
    assert result.returncode == 0, result.stderr
    assert os.readlink(tmp_path / "current") == "releases/b"
    assert (tmp_path / "shared" / ".env").read_text() == "K=v\n"  # staged env moved in
    assert not (tmp_path / "current.adapto-tmp").exists()


@pytest.mark.skipif(NODE is None, reason="node is not installed")
def test_lock_is_exclusive_and_reports_its_holder(tmp_path: Path) -> None:
    layout = ReleaseLayout(str(tmp_path))
    (tmp_path / "releases" / "r1").mkdir(parents=True)
    mine = json.dumps({"who": "me@here", "pid": 1, "token": "t1"})
    first = sh(rel.lock_and_read_state(layout, break_first=False), stdin=mine)
    assert first.returncode == 0, first.stderr
    state = parse_state(first.stdout)
    assert [r.id for r in state.releases] == ["r1"] and state.lock == mine
    second = sh(rel.lock_and_read_state(layout, break_first=False),
                stdin=json.dumps({"who": "you", "token": "t2"}))
    assert second.returncode == 75 and json.loads(second.stdout)["who"] == "me@here"
    # Releasing with someone else's token leaves the lock alone; with ours it goes.
    assert sh(rel.release_lock(layout, "t2")).returncode == 0 and Path(layout.lock).exists()
    assert sh(rel.release_lock(layout, "t1")).returncode == 0 and not Path(layout.lock).exists()
    broken = sh(rel.lock_and_read_state(layout, break_first=True), stdin=mine)
    assert broken.returncode == 0


def test_state_keeps_only_the_current_manifest_and_reads_marks(tmp_path: Path) -> None:
    layout = ReleaseLayout(str(tmp_path))
    manifest = {"dist/a}b.js": ["f" * 64, 1, 420], "dist/index.html": ["e" * 64, 2, 420]}
    for rid, marks in (("20260101000000", [".adapto-complete", ".adapto-live"]),
                       ("20260102000000", [".adapto-complete"]), ("20260103000000", [])):
        folder = tmp_path / "releases" / rid
        folder.mkdir(parents=True)
        for mark in marks:
            (folder / mark).write_text("")
        if marks:  # the incomplete release has no meta yet
            (folder / ".adapto-release.json").write_text(json.dumps(
                {"id": rid, "backend_release": rid, "manifest": {
                    "dist/index.html": ["e" * 64, 2, 420]}}))
    # A path with a brace: the sed expression does not match, the meta is sent whole.
    (tmp_path / "releases" / "20260101000000" / ".adapto-release.json").write_text(
        json.dumps({"id": "20260101000000", "manifest": manifest}, indent=1))
    os.symlink("releases/20260102000000", tmp_path / "current")
    state = parse_state(sh(rel.read_state(layout)).stdout)
    assert state.current == "20260102000000" and state.lock is None
    first, second, third = state.releases
    assert (first.complete, first.live, second.complete, second.live, third.complete) == (
        True, True, True, False, False)
    assert first.meta == {"id": "20260101000000", "manifest": manifest}  # multi-line, whole
    assert second.meta == {"id": "20260102000000", "backend_release": "20260102000000",
                           "manifest": {"dist/index.html": ["e" * 64, 2, 420]}}  # current
    assert third.meta is None
    (tmp_path / "current").unlink()
    os.symlink("releases/20260103000000", tmp_path / "current")
    again = parse_state(sh(rel.read_state(layout)).stdout)
    assert again.releases[1].meta == {"id": "20260102000000",
                                      "backend_release": "20260102000000"}  # stripped
    assert parse_state(sh(rel.read_state(ReleaseLayout(str(tmp_path / "none")))).stdout) \
        == HostState(None, [], None)


def fake_nginx(tmp_path: Path, *, accepts: bool) -> Nginx:
    """An nginx whose `-t` passes or fails: the install script's rollback is what is tested."""
    binary = tmp_path / "nginx"
    binary.write_text("#!/bin/sh\n" + ("exit 0\n" if accepts else
                                       "echo 'nginx: [emerg] unknown directive \"x\"' >&2; "
                                       "exit 1\n"))
    binary.chmod(0o755)
    prefix = tmp_path / "prefix"
    return Nginx.model_validate({
        "server_names": ["example.org"], "tls": {"mode": "self-signed"}, "control": "signal",
        "binary": str(binary), "prefix": str(prefix),
        "site_config": f"{prefix}/conf/sites-available/site.conf",
        "site_enabled": f"{prefix}/conf/sites-enabled/site.conf",
    })


@pytest.mark.parametrize("had_site", [True, False])
def test_rejected_site_config_is_put_back(tmp_path: Path, had_site: bool) -> None:
    nginx = fake_nginx(tmp_path, accepts=False)
    site, enabled = Path(nginx.site_config_path), Path(nginx.site_enabled_path)
    site.parent.mkdir(parents=True)
    enabled.parent.mkdir(parents=True)
    if had_site:
        site.write_text("old config\n")
        enabled.symlink_to(site)
    staged = Path(f"{site}.adapto-new")
    staged.write_text("new config\n")
    result = sh(nginx_cmd.install_site(nginx, str(staged)))
    assert result.returncode == 3 and "[emerg]" in result.stderr
    if had_site:
        assert site.read_text() == "old config\n" and enabled.is_symlink()
    else:
        assert not site.exists() and not enabled.is_symlink()
    assert not Path(f"{site}.adapto-prev").exists()


def test_accepted_site_config_is_installed_and_enabled(tmp_path: Path) -> None:
    nginx = fake_nginx(tmp_path, accepts=True)
    site = Path(nginx.site_config_path)
    staged = tmp_path / "staged.conf"
    staged.write_text("new config\n")
    result = sh(nginx_cmd.install_site(nginx, str(staged)))
    assert result.returncode == 0, result.stderr
    assert site.read_text() == "new config\n"
    assert Path(nginx.site_enabled_path).resolve() == site.resolve()


def test_signal_reload_starts_nginx_when_it_is_not_running(tmp_path: Path) -> None:
    nginx = fake_nginx(tmp_path, accepts=True)
    log = tmp_path / "calls"
    Path(nginx.binary).write_text(f"#!/bin/sh\necho \"$@\" >> {log}\n")
    assert sh(nginx_cmd.reload(nginx)).returncode == 0
    assert "-s reload" not in log.read_text()  # no pid file: started, not signalled
    pid_file = Path(nginx_cmd.pid_file(nginx))
    pid_file.parent.mkdir(parents=True, exist_ok=True)
    pid_file.write_text(f"{os.getpid()}\n")  # a live process
    assert sh(nginx_cmd.reload(nginx)).returncode == 0
    assert log.read_text().splitlines()[-1].endswith("-s reload")


# --- probes --------------------------------------------------------------------------------


def test_probe_output_that_is_not_json_is_a_failure_for_every_url() -> None:
    urls = [("https://127.0.0.1/api/health", "x"), ("http://127.0.0.1:1/", "")]
    results = parse_probe("sh: 1: node: not found\n", urls)
    assert [r.ok for r in results] == [False, False]
    assert "node: not found" in (results[0].error or "")
