"""`adapto logs` end to end: PM2's and nginx's real log files read over SSH on a sandbox.

The module's own sandbox (tests/operate_sandbox.py) lives on 127.0.0.71: sshd
on 2371, nginx on 8371/8471, the reference backend on 3371 and 3372 under
PM2. Lines the tests need are appended to the files PM2 and nginx write; the
follow test comes last because it rotates the instance's log file (rename +
create, then the real `logrotate -f` with the config `adapto render` makes).
"""

from __future__ import annotations

import contextlib
import os
import queue
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml

from adapto_ops.inventory.secrets import parse_dotenv
from tests.e2e_support import REPO, SECRET, Cli, adapto, cli_env, said, sandbox_marks
from tests.operate_sandbox import ENV, HOST, OpBox, Slot, deployed_sandbox

SLOT = Slot("127.0.0.71", 2371, 8371, 8471, (3371, 3372))
FIRST, SECOND = SLOT.ports

pytestmark = [pytest.mark.e2e, *sandbox_marks(("logrotate",))]


@pytest.fixture(scope="module")
def box(tmp_path_factory: pytest.TempPathFactory) -> Iterator[OpBox]:
    with deployed_sandbox(tmp_path_factory.mktemp("logs"), SLOT) as made:
        yield made


def out_log(box: OpBox, port: int = FIRST) -> Path:
    return box.log_dir / f"ai-platform-backend-{port}-out.log"


def pm2_line(text: str, when: datetime | None = None) -> str:
    """A line as PM2 writes it with the ecosystem's log_date_format."""
    moment = when or datetime.now(UTC)
    return f"{moment:%Y-%m-%d %H:%M:%S} +00:00: {text}"


def append(path: Path, *lines: str) -> None:
    with path.open("a", encoding="utf-8") as handle:
        handle.write("".join(line + "\n" for line in lines))


def from_source(result: Cli, label: str) -> list[str]:
    """The text of the lines a source printed (prefix `sandbox1 LABEL ... | ` removed)."""
    pattern = re.compile(rf"^{HOST} {re.escape(label)}\s*\| (.*)$")
    return [m[1] for line in result.stdout.splitlines() if (m := pattern.match(line))]


def test_default_is_the_last_100_lines_of_each_file_merged_and_prefixed(box: OpBox) -> None:
    token = secrets.token_hex(4)
    append(out_log(box), *(pm2_line(f"count-{token} {i}") for i in range(150)))
    result = box.cli("logs", "backend")
    assert result.returncode == 0, said(result)
    ours = [t for t in from_source(result, f"{FIRST}/out") if f"count-{token}" in t]
    assert len(from_source(result, f"{FIRST}/out")) == 100
    assert ours[-1].endswith(f"count-{token} 149") and len(ours) <= 100
    labels = {line.split("|")[0] for line in result.stdout.splitlines()}
    # every file of both instances, aligned: the bar sits in the same column everywhere
    assert {label.split()[1] for label in labels} == {f"{FIRST}/out", f"{FIRST}/err",
                                                      f"{SECOND}/out", f"{SECOND}/err"}
    assert len({len(label) for label in labels}) == 1


def test_lines_and_instance(box: OpBox) -> None:
    token = secrets.token_hex(4)
    append(out_log(box, SECOND), *(pm2_line(f"inst-{token} {i}") for i in range(20)))
    result = box.cli("logs", "backend", "--instance", str(SECOND), "--lines", "7")
    assert result.returncode == 0, said(result)
    assert len(from_source(result, f"{SECOND}/out")) == 7
    assert all(f"inst-{token} {i}" in t for i, t in
               zip(range(13, 20), from_source(result, f"{SECOND}/out"), strict=True))
    assert not [line for line in result.stdout.splitlines() if f"{FIRST}/" in line]


def test_grep_finds_the_last_n_matches_far_back_in_the_file(box: OpBox) -> None:
    token = secrets.token_hex(4)
    append(out_log(box), *(pm2_line(f"NEEDLE-{token} {i}") for i in range(4)))
    # ~400 kB after them: more than the first window, so the window must grow.
    append(out_log(box), *(pm2_line("filler " + "z" * 120) for _ in range(3000)))
    result = box.cli("logs", "backend", "--instance", str(FIRST), "--grep", f"NEEDLE-{token}",
                     "-n", "3")
    assert result.returncode == 0, said(result)
    assert [t.split(": ", 1)[1] for t in from_source(result, f"{FIRST}/out")] == [
        f"NEEDLE-{token} {i}" for i in (1, 2, 3)]
    assert from_source(result, f"{FIRST}/err") == []


def test_since_keeps_new_lines_and_their_untimed_continuations(box: OpBox) -> None:
    token = secrets.token_hex(4)
    old = datetime.now(UTC) - timedelta(hours=3)
    append(out_log(box), pm2_line(f"old-{token}", old), f"  old-trace-{token}",
           pm2_line(f"new-{token}"), f"  new-trace-{token}")
    result = box.cli("logs", "backend", "--instance", str(FIRST), "--since", "1h",
                     "--grep", token)
    assert result.returncode == 0, said(result)
    shown = from_source(result, f"{FIRST}/out")
    assert [t.removeprefix("  ").split(": ")[-1] for t in shown] == [f"new-{token}",
                                                                    f"new-trace-{token}"]
    bad = box.cli("logs", "backend", "--since", "last tuesday")
    assert bad.returncode == 2 and bad.stdout == "", said(bad)
    assert bad.stderr.count("\n") == 1 and "--since" in bad.stderr


def test_nginx_access_shows_a_request_just_made(box: OpBox) -> None:
    token = secrets.token_hex(6)
    assert box.get(f"/api/health?probe={token}").status_code == 200
    result = box.cli("logs", "nginx-access", "-n", "5")
    assert result.returncode == 0, said(result)
    ours = [line for line in result.stdout.splitlines() if token in line]
    assert len(ours) == 1, said(result)
    # one file: bare lines, as nginx wrote them (ready for other tools)
    assert ours[0].startswith("127.0.0.1 - - [") and f"GET /api/health?probe={token}" in ours[0]
    both = box.cli("logs", "nginx", "--grep", token)
    assert both.returncode == 0, said(both)
    assert len(from_source(both, "nginx/access")) == 1


class Forwarder:
    """A plain TCP forwarder on loopback: a second SSH address for the same sandbox host."""

    def __init__(self, address: str, target: tuple[str, int]) -> None:
        self.target = target
        self.listener = socket.create_server((address, 0))
        self.port = self.listener.getsockname()[1]
        self.sockets: list[socket.socket] = []
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            upstream = socket.create_connection(self.target)
            self.sockets += [client, upstream]
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pipe, args=(a, b), daemon=True).start()

    @staticmethod
    def _pipe(source: socket.socket, sink: socket.socket) -> None:
        with contextlib.suppress(OSError):
            while data := source.recv(65536):
                sink.sendall(data)
        with contextlib.suppress(OSError):
            sink.shutdown(socket.SHUT_WR)

    def close(self) -> None:
        for sock in [self.listener, *self.sockets]:
            with contextlib.suppress(OSError):
                sock.close()


def test_several_hosts_are_read_at_once_and_their_prefixes_line_up(box: OpBox) -> None:
    forwarder = Forwarder(SLOT.address, (SLOT.address, SLOT.ssh_port))
    known_hosts = box.sdir / "ssh" / "known_hosts"
    pinned = known_hosts.read_text()
    here, there = f"[{SLOT.address}]:{SLOT.ssh_port}", f"[{SLOT.address}]:{forwarder.port}"
    known_hosts.write_text(pinned + pinned.replace(here, there))

    def two_names_one_host(env: dict[str, Any]) -> None:
        # The same sandbox host (same files) under a second name and SSH address, so two
        # connections run side by side and their lines meet in one output.
        fixed = yaml.safe_load(yaml.safe_dump(env).replace("{host}", HOST))
        env.clear()
        env.update(fixed)
        env["hosts"].append({**env["hosts"][0], "name": "second-web", "roles": ["web"],
                             "port": forwarder.port})

    try:
        two = box.write_variant("two-hosts", two_names_one_host)
        token = secrets.token_hex(6)
        assert box.get(f"/api/health?two={token}").status_code == 200
        result = adapto("logs", "nginx-access", "-e", ENV, "-i", str(two), "--grep", token)
    finally:
        known_hosts.write_text(pinned)
        forwarder.close()
    assert result.returncode == 0, said(result)
    lines = result.stdout.splitlines()
    assert len(lines) == 2, said(result)
    prefixes = {line.split(" | ", 1)[0] for line in lines}
    assert prefixes == {"sandbox1 nginx/access  ", "second-web nginx/access"}
    texts = {line.split(" | ", 1)[1] for line in lines}
    assert len(texts) == 1 and f"two={token}" in texts.pop()


def test_secret_values_in_log_lines_are_masked(box: OpBox) -> None:
    value = parse_dotenv((box.base / ".adapto" / "secrets.env").read_text())[SECRET]
    append(out_log(box), pm2_line(f"connecting with key={value} (oops)"))
    result = box.cli("logs", "backend", "-n", "5")
    assert result.returncode == 0, said(result)
    assert value not in result.stdout + result.stderr
    assert any("key=****" in t for t in from_source(result, f"{FIRST}/out")), said(result)
    probing = box.cli("logs", "backend", "--grep", re.escape(value[:12]))
    assert value[:12] not in probing.stdout and probing.returncode == 0, said(probing)


def test_missing_files_are_one_line_each_and_nothing_at_all_is_an_error(box: OpBox) -> None:
    three = box.write_variant("three", lambda env: env["backend"].update(instances=3))
    third = SECOND + 1
    result = adapto("logs", "backend", "-e", ENV, "-i", str(three), "-n", "2")
    assert result.returncode == 0, said(result)
    missing = [line for line in result.stderr.splitlines() if "no log file" in line]
    assert [line.split(":")[0] for line in missing] == [f"{HOST} {third}/out",
                                                        f"{HOST} {third}/err"]
    assert from_source(result, f"{FIRST}/out")
    nothing = adapto("logs", "backend", "-e", ENV, "-i", str(three), "--instance", str(third))
    assert nothing.returncode == 1, said(nothing)
    assert nothing.stderr.strip().splitlines()[-1] == \
        f"error: no backend log file exists on {HOST}"


def test_an_unreachable_host_is_one_line_and_exit_1(box: OpBox) -> None:
    closed = box.write_variant("closed", lambda env: env["hosts"][0].update(port=1))
    result = adapto("logs", "nginx", "-e", ENV, "-i", str(closed))
    assert result.returncode == 1, said(result)
    assert result.stdout == ""
    assert len(result.stderr.strip().splitlines()) == 1 and "unreachable" in result.stderr


# --- follow (last: it rotates the first instance's log) ------------------------------------


class Follower:
    """`adapto logs ... --follow` in the background, its stdout lines on a queue."""

    def __init__(self, box: OpBox, *args: str, inventory: Path | None = None) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "adapto_ops", "logs", *args, "--follow", "-e", ENV,
             "-i", str(inventory or box.inventory)],
            cwd=REPO, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
            text=True, env=cli_env())
        self.lines: queue.Queue[str] = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.put(line.rstrip("\n"))

    def wait_for(self, wanted: Callable[[str], bool], timeout: float = 15) -> tuple[str, float]:
        """The first line that satisfies ``wanted``, and how long it took to come."""
        started = time.perf_counter()
        deadline = started + timeout
        while (left := deadline - time.perf_counter()) > 0:
            try:
                line = self.lines.get(timeout=left)
            except queue.Empty:
                break
            if wanted(line):
                return line, time.perf_counter() - started
        raise AssertionError(f"no such line within {timeout}s; stderr so far is not read")

    def interrupt(self) -> tuple[int, str]:
        self.proc.send_signal(signal.SIGINT)
        _, err = self.proc.communicate(timeout=15)
        return self.proc.returncode, err


def tails_left(path: Path) -> str:
    return subprocess.run(["pgrep", "-af", str(path)], capture_output=True, text=True).stdout


def test_follow_of_many_files_and_of_one_that_appears_later(box: OpBox) -> None:
    # Six instances: twelve files, more than one connection's share of channels; the
    # last instance's files do not exist yet (only two instances run).
    six = box.write_variant("six", lambda env: env["backend"].update(instances=6))
    late = box.log_dir / f"ai-platform-backend-{FIRST + 5}-out.log"
    follower = Follower(box, "backend", inventory=six)
    try:
        deadline = time.monotonic() + 20
        while len(tails_left(box.log_dir).splitlines()) < 12 and time.monotonic() < deadline:
            time.sleep(0.2)
        assert len(tails_left(box.log_dir).splitlines()) >= 12, tails_left(box.log_dir)
        token = secrets.token_hex(4)
        append(late, pm2_line(f"appeared-{token}"))
        line, _ = follower.wait_for(lambda line: f"appeared-{token}" in line)
        assert line.startswith(f"{HOST} {FIRST + 5}/out "), line
    finally:
        code, err = follower.interrupt()
        late.unlink(missing_ok=True)
    assert code in (0, 130) and "Traceback" not in err, err
    assert f"{FIRST + 5}/out: no log file" in err  # said once, at the start
    deadline = time.monotonic() + 10
    while tails_left(box.log_dir) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert tails_left(box.log_dir) == ""


def test_follow_sees_new_lines_across_rotations_and_ends_cleanly(box: OpBox) -> None:
    log = out_log(box)
    token = secrets.token_hex(4)
    append(log, pm2_line(f"before-{token}"))
    follower = Follower(box, "backend", "--instance", str(FIRST))
    try:
        follower.wait_for(lambda line: f"before-{token}" in line)  # the backlog
        deadline = time.monotonic() + 10
        while not tails_left(log) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert tails_left(log), "no tail runs on the host while following"
        append(log, pm2_line(f"after-start-{token}"))
        line, _ = follower.wait_for(lambda line: f"after-start-{token}" in line)
        assert line.startswith(f"{HOST} {FIRST}/out")

        log.rename(log.with_name(log.name + ".1"))  # rotation by rename + create
        append(log, pm2_line(f"after-rename-{token}"))
        follower.wait_for(lambda line: f"after-rename-{token}" in line)

        # The real logrotate with the config adapto renders (copytruncate, dated).
        rendered = box.base / "rendered"
        render = box.cli("render", "logrotate", "--out", str(rendered))
        assert render.returncode == 0, said(render)
        config = next((rendered / "logrotate").iterdir())
        logrotate = shutil.which("logrotate", path=f"{os.environ['PATH']}:/usr/sbin")
        assert logrotate is not None
        rotated = subprocess.run([logrotate, "-f", "-s", str(box.base / "logrotate.state"),
                                  str(config)], capture_output=True, text=True, timeout=60)
        assert rotated.returncode == 0, rotated.stderr
        assert log.stat().st_size == 0 and list(box.log_dir.glob(f"{log.name}-*"))
        time.sleep(0.3)
        append(log, pm2_line(f"after-logrotate-{token}"))
        follower.wait_for(lambda line: f"after-logrotate-{token}" in line)
    finally:
        code, err = follower.interrupt()
    assert code in (0, 130), err
    assert "Traceback" not in err, err
    deadline = time.monotonic() + 10
    while tails_left(log) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert tails_left(log) == "", "a remote tail outlived `logs --follow`"
