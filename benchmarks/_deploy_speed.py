"""Deploy wall time and bytes beside rsync, and the build cache's no-change `deploy all`.

(b) `adapto deploy frontend --skip-build --json` of the generated 300-file,
    ~37 MB dist (benchmarks/_dist.py), each run followed at once by
    `rsync -a --delete` of the same dist over the same sshd (ssh with the
    sandbox's key and known_hosts, no compression) into a folder of its own on
    the host, so both see the same load: first deploy / first copy, no change
    (`--force`: everything is verified, only nothing is sent), no change
    (skipped as unchanged), one changed 100 kB asset. Wall = the whole process.
(c) The build cache: the real reference/frontend (copied out of the repository,
    without node_modules and dist), built by the inventory's own command
    (`npm ci --no-audit --no-fund && npm run build`): `deploy all` once to fill
    the cache, then `deploy all` with nothing changed (median of the repeats;
    target <= 1.5 s), and for comparison `deploy all --rebuild` (what every
    no-change `deploy all` cost before the cache: the build runs again).
"""

from __future__ import annotations

import os
import pwd
import re
import shutil
import statistics
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from _dist import HERO_BYTES, Dist
from _report import mb, note, progress, table, verdict

NO_CHANGE_FORCE_TARGET_S = 1.0
NO_CHANGE_FORCE_RATIO = 2.5
NO_CHANGE_TARGET_S = 1.5  # skipped as unchanged
ONE_CHANGE_TARGET_S = 2.0
DEPLOY_ALL_CACHED_TARGET_S = 1.5


@dataclass(frozen=True)
class SshTarget:
    """How rsync reaches the sandbox host: the same sshd, key and known_hosts as adapto."""

    address: str
    port: int
    key: Path
    known_hosts: Path
    folder: Path  # the host's own files (rsync copies go under it)


@dataclass
class Copy:
    wall_s: float
    bytes_sent: int
    files_sent: int


def rsync(ssh: SshTarget, dist: Path, name: str) -> Copy:
    """`rsync -a --delete --stats` of ``dist`` to ``<folder>/<name>/`` on the host."""
    command = (f"ssh -F /dev/null -p {ssh.port} -i {ssh.key} -o IdentitiesOnly=yes "
               f"-o BatchMode=yes -o StrictHostKeyChecking=yes "
               f"-o UserKnownHostsFile={ssh.known_hosts}")
    argv = ["rsync", "-a", "--delete", "--stats", "-e", command, f"{dist}/",
            f"root@{ssh.address}:{ssh.folder / name}/"]
    started = time.perf_counter()
    proc = subprocess.run(argv, capture_output=True, text=True, timeout=300, check=False)
    wall = time.perf_counter() - started
    if proc.returncode != 0:
        raise RuntimeError(f"rsync failed: {proc.stderr.strip()[-300:]}")

    def stat(label: str) -> int:
        found = re.search(rf"{label}: ([\d,.]+)", proc.stdout)
        return int(found.group(1).replace(",", "").replace(".", "")) if found else -1

    return Copy(wall, stat("Total bytes sent"), stat("Number of regular files transferred"))


def median(values: list[float]) -> float:
    return statistics.median(values) if values else float("nan")


def speed_section(adapto: Callable[..., Any], dist: Dist, ssh: SshTarget, *,
                  reps: int, before: Callable[..., Any] | None = None) -> list[bool]:
    """Table (b); returns the verdicts (no-change --force time and ratio, one change)."""
    if not shutil.which("rsync"):
        raise RuntimeError("rsync is not installed (apt-get install -y rsync)")
    deploy = ("deploy", "frontend", "--skip-build", "--yes", "--json")
    progress("(b) generating the 300-file dist")
    files, total = dist.write()
    progress(f"(b) first deploy of {files} files, {mb(total)}, then the first rsync")
    first = adapto(*deploy, timeout=600).check("first deploy")
    first_copy = rsync(ssh, dist.dist, "rsync-copy")
    forced, forced_copies, no_change, changed, changed_copies = [], [], [], [], []
    baseline = []
    for rep in range(reps):
        progress(f"(b) no change --force, beside rsync ({rep + 1}/{reps})")
        forced.append(adapto(*deploy, "--force").check("no-change --force"))
        forced_copies.append(rsync(ssh, dist.dist, "rsync-copy"))
        if before is not None:
            baseline.append(before(*deploy, "--force").check("no-change --force (before)"))
    for _ in range(reps):
        no_change.append(adapto(*deploy).check("no-change redeploy"))
    hero_sizes = []
    for generation in range(1, reps + 1):
        progress(f"(b) one changed asset, beside rsync ({generation}/{reps})")
        _, size = dist.change_hero(generation)
        hero_sizes.append(size)
        changed.append(adapto(*deploy).check("one-change redeploy"))
        changed_copies.append(rsync(ssh, dist.dist, "rsync-copy"))

    def wall(runs: list[Any]) -> float:
        return median([r.wall_s for r in runs])

    def walls(runs: list[Any]) -> str:
        return "/".join(f"{r.wall_s:.2f}" for r in runs)

    forced_s, forced_rsync = wall(forced), wall(forced_copies)
    ratio = forced_s / forced_rsync if forced_rsync else float("inf")
    ok_forced = forced_s <= NO_CHANGE_FORCE_TARGET_S and ratio <= NO_CHANGE_FORCE_RATIO
    allowance = 3 * HERO_BYTES + 40_000  # the asset, index.html and the generated files
    ok_one = wall(changed) <= ONE_CHANGE_TARGET_S and max(r.bytes_sent for r in changed) \
        <= allowance
    rows = [
        ["first deploy (300 files)", f"{first.wall_s:.2f}", str(first.bytes_sent),
         f"{first_copy.wall_s:.2f}", str(first_copy.bytes_sent),
         f"{first.wall_s / first_copy.wall_s:.1f}x", "(info)", "-"],
        [f"no change --force (x{reps}: {walls(forced)} | rsync {walls(forced_copies)})",
         f"{forced_s:.2f}", str(forced[-1].bytes_sent), f"{forced_rsync:.2f}",
         str(forced_copies[-1].bytes_sent), f"{ratio:.1f}x",
         f"<= {NO_CHANGE_FORCE_TARGET_S} s and <= {NO_CHANGE_FORCE_RATIO}x", verdict(ok_forced)],
        *([[f"no change --force, before: {before.code} (x{reps}: {walls(baseline)})",
             f"{wall(baseline):.2f}", str(baseline[-1].bytes_sent), f"{forced_rsync:.2f}", "-",
             f"{wall(baseline) / forced_rsync:.1f}x", "(comparison)", "-"]]
          if before is not None else []),
        [f"no change, skipped (x{reps}: {walls(no_change)})", f"{wall(no_change):.2f}",
         str(no_change[-1].bytes_sent), f"{forced_rsync:.2f}", "-",
         f"{wall(no_change) / forced_rsync:.1f}x", f"<= {NO_CHANGE_TARGET_S} s",
         verdict(wall(no_change) <= NO_CHANGE_TARGET_S)],
        [f"one 100 kB asset changed (x{reps}: {walls(changed)} | rsync "
         f"{walls(changed_copies)})", f"{wall(changed):.2f}",
         "/".join(str(r.bytes_sent) for r in changed), f"{wall(changed_copies):.2f}",
         "/".join(str(c.bytes_sent) for c in changed_copies),
         f"{wall(changed) / wall(changed_copies):.1f}x",
         f"<= {ONE_CHANGE_TARGET_S} s; <= {allowance} B", verdict(ok_one)],
    ]
    table(f"(b) `adapto deploy frontend --skip-build` of a generated dist ({files} files, "
          f"{mb(total)}) beside `rsync -a --delete` of the same dist over the same sshd, "
          f"each rsync right after its adapto run (medians of {reps})",
          ["case", "adapto s", "adapto bytes", "rsync s", "rsync bytes", "ratio", "target",
           "verdict"], rows)
    note("wall s = the whole process (`python3 -m adapto_ops ...`, `rsync ...`); adapto "
         "verifies the release and gates on health every time, rsync only copies")
    note(f"first deploy steps: {first.steps()}")
    note(f"no change --force steps: {forced[-1].steps()}")
    note(f"no change steps: {no_change[-1].steps()} ({no_change[-1].outcome})")
    note(f"one change steps: {changed[-1].steps()}")
    rtt, sftp = ssh_round_trip_ms(ssh)
    note(f"one SSH command round trip on this sshd (Paramiko, connection open): `true` median "
         f"{rtt:.0f} ms; an SFTP channel (no command) {sftp:.0f} ms: every new session runs "
         f"the login shell ({pwd.getpwuid(os.getuid()).pw_shell}, which reads ~/.bashrc for "
         f"SSH commands), rsync's included")
    return [ok_forced, ok_one]


def ssh_round_trip_ms(ssh: SshTarget, runs: int = 7) -> tuple[float, float]:
    """Medians over one open connection: a command (a login shell each) and an SFTP channel."""
    import paramiko

    client = paramiko.SSHClient()
    client.load_host_keys(str(ssh.known_hosts))
    client.set_missing_host_key_policy(paramiko.RejectPolicy())
    client.connect(ssh.address, port=ssh.port, username="root", key_filename=str(ssh.key),
                   look_for_keys=False, allow_agent=False, timeout=10)
    command, sftp = [], []
    try:
        for _ in range(runs):
            started = time.perf_counter()
            _, out, _ = client.exec_command("true")
            out.channel.recv_exit_status()
            command.append((time.perf_counter() - started) * 1000)
            started = time.perf_counter()
            client.open_sftp().close()
            sftp.append((time.perf_counter() - started) * 1000)
    finally:
        client.close()
    return median(command), median(sftp)


def build_cache_section(adapto: Callable[..., Any], repo: Path, source: Path, *,
                        reps: int) -> list[bool]:
    """Table (c) with ``adapto`` bound to an inventory whose frontend is ``source``."""
    if source.exists():
        shutil.rmtree(source)
    shutil.copytree(repo / "reference" / "frontend", source,
                    ignore=shutil.ignore_patterns("node_modules", "dist"))
    deploy = ("deploy", "all", "--yes", "--json")
    progress("(c) deploy all with the real frontend build (fills the build cache)")
    first = adapto(*deploy, timeout=900).check("deploy all (build)")
    progress(f"(c) deploy all with nothing changed (x{reps})")
    cached = [adapto(*deploy).check("deploy all (cached)") for _ in range(reps)]
    progress("(c) deploy all --rebuild: the build runs again, as before the cache")
    rebuilt = adapto(*deploy, "--rebuild", timeout=900).check("deploy all --rebuild")

    def build_of(run: Any) -> str:
        event = next((e for e in run.events if e.get("step") == "build"
                      and e.get("kind") == "ok"), {})
        message = str(event.get("message", "?"))
        return message[: message.find(")") + 1] if ")" in message else message

    cached_s = median([r.wall_s for r in cached])
    ok = cached_s <= DEPLOY_ALL_CACHED_TARGET_S and all(
        build_of(r).startswith("cached") for r in cached)
    rows = [
        ["first `deploy all` (build, then cached)", f"{first.wall_s:.2f}", build_of(first),
         first.outcome, "(info)", "-"],
        [f"no change `deploy all` (x{reps}: "
         + "/".join(f"{r.wall_s:.2f}" for r in cached) + ")", f"{cached_s:.2f}",
         build_of(cached[-1]), cached[-1].outcome, f"<= {DEPLOY_ALL_CACHED_TARGET_S} s",
         verdict(ok)],
        ["no change `deploy all --rebuild` (the before)", f"{rebuilt.wall_s:.2f}",
         build_of(rebuilt), rebuilt.outcome, "(info)", "-"],
    ]
    table("(c) build cache: `adapto deploy all` with reference/frontend built by "
          "`npm ci --no-audit --no-fund && npm run build`",
          ["case", "wall s", "build", "result", "target", "verdict"], rows)
    note(f"no change steps: {cached[-1].steps()}")
    return [ok]
