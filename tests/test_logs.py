"""The pure pieces of `adapto logs`: --since, times per format, filters, masking, prefixes,
and the shell commands that read a window and follow a file, run by a local shell.

The window and follow commands are run here with sh on real files (the SSH
path and PM2/nginx writing the files are tests/test_logs_e2e.py's job).
"""

from __future__ import annotations

import re
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest

from adapto_ops.commands import logs as cmd
from adapto_ops.errors import AdaptoError
from adapto_ops.inventory.model import Host
from adapto_ops.logs.lines import (
    LineFilter,
    Masker,
    compile_grep,
    line_time,
    offset_zone,
    parse_since,
    prefix_width,
    prefixed,
)
from adapto_ops.procedures.logs import LogOptions, read_source
from adapto_ops.remote import Result
from adapto_ops.selection import select

REPO = Path(__file__).resolve().parent.parent
NOW = datetime(2026, 11, 30, 10, 36, 6, tzinfo=UTC)


# --- --since -------------------------------------------------------------------------------


@pytest.mark.parametrize(("text", "ago"), [
    ("10m", timedelta(minutes=10)), ("2h", timedelta(hours=2)), ("1d", timedelta(days=1)),
    ("30s", timedelta(seconds=30)), ("1w", timedelta(weeks=1)), (" 5 m ", timedelta(minutes=5)),
])
def test_since_durations_count_back_from_now(text: str, ago: timedelta) -> None:
    assert parse_since(text, NOW) == NOW - ago


def test_since_iso_times_are_utc_unless_they_carry_an_offset() -> None:
    assert parse_since("2026-11-30T10:00", NOW) == datetime(2026, 11, 30, 10, 0, tzinfo=UTC)
    assert parse_since("2026-11-30 12:00:00+02:00", NOW) == datetime(2026, 11, 30, 10, 0,
                                                                      tzinfo=UTC)
    assert parse_since("2026-11-30T10:00:00Z", NOW) == datetime(2026, 11, 30, 10, 0, tzinfo=UTC)
    assert parse_since("2026-11-30", NOW) == datetime(2026, 11, 30, tzinfo=UTC)


@pytest.mark.parametrize("text", ["yesterday", "10", "10 minutes", "-5m", "2026-13-01", ""])
def test_since_that_is_neither_is_a_usage_error(text: str) -> None:
    with pytest.raises(AdaptoError) as caught:
        parse_since(text, NOW)
    assert caught.value.exit_code == 2
    assert "--since" in caught.value.message and "10m" in caught.value.message


def test_grep_is_a_python_regex_and_a_bad_one_is_a_usage_error() -> None:
    assert compile_grep(r"(?i)error|\btraceback\b").search("ERROR here")
    with pytest.raises(AdaptoError) as caught:
        compile_grep("a(b")
    assert caught.value.exit_code == 2
    assert caught.value.message.startswith("--grep 'a(b': not a valid regular expression")


# --- times per format ------------------------------------------------------------------------


def test_pm2_times_with_the_offset_adapto_configures() -> None:
    assert line_time("2026-11-30 10:36:06 +00:00: GET /api/health", "pm2") == NOW
    assert line_time("2026-11-30 13:36:06 +03:00: x", "pm2") == NOW
    assert line_time("2026-11-30 10:36:06 Z: x", "pm2") == NOW


def test_pm2_default_times_have_no_offset_and_take_the_hosts() -> None:
    # PM2's own format with `time: true`: the daemon's local time.
    plus_two = offset_zone("+0200")
    assert line_time("2026-11-30T12:36:06: x", "pm2", plus_two) == NOW
    assert line_time("2026-11-30T10:36:06: x", "pm2") == NOW


def test_nginx_access_time_is_found_inside_the_line() -> None:
    line = '127.0.0.1 - - [30/Nov/2026:10:36:06 +0000] "GET / HTTP/1.1" 200 166 "-" "-"'
    assert line_time(line, "nginx-access") == NOW
    assert line_time(line.replace("10:36:06 +0000", "05:36:06 -0500"), "nginx-access") == NOW
    assert line_time(line.replace("Nov", "Foo"), "nginx-access") is None


def test_nginx_error_time_is_the_servers_local_time() -> None:
    line = "2026/11/30 11:36:06 [warn] 123#123: *1 an upstream response is buffered"
    assert line_time(line, "nginx-error", offset_zone("+0100")) == NOW
    assert line_time(line, "nginx-error", offset_zone("-03:30")) == NOW + timedelta(hours=4.5)


@pytest.mark.parametrize(("line", "fmt"), [
    ("Traceback (most recent call last):", "pm2"),
    ("    at Object.<anonymous> (/srv/app.js:1:1)", "pm2"),
    ("2026-13-45 10:36:06 +00:00: not a date", "pm2"),
    ("no brackets here", "nginx-access"),
    ("2026-11-30 10:36:06 +00:00: pm2 style", "nginx-error"),
])
def test_lines_without_a_time_of_their_format(line: str, fmt: str) -> None:
    assert line_time(line, fmt) is None


def test_offset_zones() -> None:
    assert offset_zone("+0000") == UTC
    assert offset_zone("+05:30") == timezone(timedelta(hours=5, minutes=30))
    assert offset_zone("-0800") == timezone(-timedelta(hours=8))
    assert offset_zone("garbage") == UTC


# --- filters ----------------------------------------------------------------------------------


def pm2_line(minute: int, text: str) -> str:
    return f"2026-11-30 10:{minute:02d}:00 +00:00: {text}"


def test_untimed_lines_follow_the_decision_of_the_line_before() -> None:
    since = datetime(2026, 11, 30, 10, 30, tzinfo=UTC)
    filt = LineFilter("pm2", grep=None, since=since)
    lines = ["  continuation of something older", pm2_line(20, "old error"), "Traceback (old)",
             pm2_line(31, "new error"), "Traceback (new)", "  File app.py"]
    kept = [line for line in lines if filt.accept(line)]
    assert kept == [pm2_line(31, "new error"), "Traceback (new)", "  File app.py"]
    assert filt.last_time == datetime(2026, 11, 30, 10, 31, tzinfo=UTC)


def test_grep_and_since_together() -> None:
    since = datetime(2026, 11, 30, 10, 30, tzinfo=UTC)
    filt = LineFilter("pm2", grep=re.compile("ERROR"), since=since)
    lines = [pm2_line(29, "ERROR old"), pm2_line(31, "ok"), pm2_line(32, "ERROR new")]
    assert not filt.saw_older
    assert [line for line in lines if filt.accept(line)] == [pm2_line(32, "ERROR new")]
    assert filt.saw_older  # so a larger window cannot find more


def test_without_since_only_shown_lines_have_their_time_read() -> None:
    filt = LineFilter("pm2", grep=re.compile("keep"), since=None)
    assert not filt.accept(pm2_line(5, "drop"))
    assert filt.last_time is None
    assert filt.accept(pm2_line(6, "keep")) and filt.accept("  keep going (untimed)")
    assert filt.last_time == datetime(2026, 11, 30, 10, 6, tzinfo=UTC)


def test_masker_replaces_every_value_and_the_longest_first() -> None:
    masker = Masker(["s3cr3t-value", "s3cr3t", ""])
    line = masker("key=s3cr3t-value other=s3cr3t again s3cr3t-value")
    assert "s3cr3t" not in line
    assert line == "key=****(12 chars) other=****(6 chars) again ****(12 chars)"
    assert Masker([])("nothing to hide") == "nothing to hide"
    assert Masker(["a.b"])("axb a.b") == "axb ****(3 chars)"  # values are literal, not regexes


def test_prefixes_line_up_and_one_source_has_none() -> None:
    labels = ["sandbox1 3001/out", "sandbox1 nginx/access"]
    width = prefix_width(labels)
    first, second = (prefixed(label, width, "text") for label in labels)
    assert first.index("|") == second.index("|") == len("sandbox1 nginx/access") + 1
    assert first == "sandbox1 3001/out     | text"
    assert prefixed(None, width, "bare") == "bare"


# --- sources --------------------------------------------------------------------------------


def sandbox_target(roles: list[str] | None = None):  # type: ignore[no-untyped-def]
    from adapto_ops.render.configs import Target

    selection = select(str(REPO / "inventory.yaml"), "sandbox")
    target = selection.targets[0]
    if roles is None:
        return target
    host = Host(**{**target.host.model_dump(), "roles": roles})
    return Target.of(target.project, target.env_name, selection.env, host)


def test_backend_sources_are_pm2s_files_of_every_instance_or_one() -> None:
    target = sandbox_target()
    sources = cmd.log_sources(target, "backend")
    logs = "/var/tmp/adapto-sandbox/sandbox1/app/shared/logs"
    assert [(s.label, s.path, s.format) for s in sources] == [
        ("3001/out", f"{logs}/ai-platform-backend-3001-out.log", "pm2"),
        ("3001/err", f"{logs}/ai-platform-backend-3001-error.log", "pm2"),
        ("3002/out", f"{logs}/ai-platform-backend-3002-out.log", "pm2"),
        ("3002/err", f"{logs}/ai-platform-backend-3002-error.log", "pm2"),
    ]
    assert [s.label for s in cmd.log_sources(target, "backend", 3002)] == ["3002/out",
                                                                          "3002/err"]
    assert sources[0].where == "sandbox1 3001/out"


def test_nginx_sources_and_roles() -> None:
    target = sandbox_target()
    nginx_logs = "/var/tmp/adapto-sandbox/sandbox1/nginx/logs"
    assert [(s.label, s.path) for s in cmd.log_sources(target, "nginx")] == [
        ("nginx/access", f"{nginx_logs}/access.log"), ("nginx/error", f"{nginx_logs}/error.log")]
    assert [s.format for s in cmd.log_sources(target, "nginx-error")] == ["nginx-error"]
    assert [s.format for s in cmd.log_sources(target, "nginx-access")] == ["nginx-access"]
    assert cmd.log_sources(sandbox_target(["web"]), "backend") == []
    assert cmd.log_sources(sandbox_target(["backend"]), "nginx") == []


# --- the shell commands, run locally --------------------------------------------------------


def sh(script: str) -> str:
    return subprocess.run(["sh", "-c", script], capture_output=True, text=True, timeout=30,
                          check=True).stdout


def test_window_is_the_last_bytes_with_a_header(tmp_path: Path) -> None:
    log = tmp_path / "a log.log"  # a space: the path must be quoted
    log.write_text("".join(f"line {i}\n" for i in range(1000)))
    size = log.stat().st_size
    window = cmd.parse_window(sh(cmd.read_window(str(log), 100)))
    assert (window.state, window.size, window.start) == ("ok", size, size - 100)
    assert window.text == log.read_bytes()[-100:].decode()
    assert re.fullmatch(r"[+-]\d{4}", window.utc_offset)
    whole = cmd.parse_window(sh(cmd.read_window(str(log), 10**6)))
    assert (whole.start, whole.text) == (0, log.read_text())


def test_window_of_a_missing_or_empty_file(tmp_path: Path) -> None:
    assert cmd.parse_window(sh(cmd.read_window(str(tmp_path / "nope.log"), 100))).state \
        == "missing"
    (tmp_path / "empty.log").write_text("")
    empty = cmd.parse_window(sh(cmd.read_window(str(tmp_path / "empty.log"), 100)))
    assert (empty.state, empty.size, empty.text) == ("ok", 0, "")
    assert cmd.parse_window("garbage").state == "missing"
    assert cmd.parse_window("ok 10 0 +0000\nhalf of it").state == "failed"  # cut short


class LocalStream:
    """A command's stdout lines as they come, like remote.LineStream."""

    def __init__(self, command: str) -> None:
        self.proc = subprocess.Popen(["sh", "-c", command], stdout=subprocess.PIPE, text=True)

    def __iter__(self) -> Iterator[str]:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            yield line.removesuffix("\n")

    def close(self) -> None:
        self.proc.kill()
        self.proc.wait()


class LocalShell:
    """The transport's run() and stream(), by a local sh: what read_source needs."""

    def __init__(self) -> None:
        self.commands: list[str] = []
        self.streamed = 0

    def run(self, command: str, **_: object) -> Result:
        self.commands.append(command)
        done = subprocess.run(["sh", "-c", command], capture_output=True, text=True, timeout=30)
        return Result(command, done.stdout, done.stderr, done.returncode)

    def stream(self, command: str) -> LocalStream:
        self.commands.append(command)
        self.streamed += 1
        return LocalStream(command)


def _filter_maker(grep: str | None = None, since: datetime | None = None):  # type: ignore[no-untyped-def]
    def make(source: cmd.LogSource, local: timezone) -> LineFilter:
        return LineFilter(source.format, grep=compile_grep(grep) if grep else None, since=since,
                          local=local)
    return make


def test_last_n_matching_lines_grow_the_window_until_found(tmp_path: Path) -> None:
    log = tmp_path / "big.log"
    # Three matches near the start of ~2.5 MB: the first window (64 KiB) has none.
    lines = [pm2_line(0, f"NEEDLE {i}") for i in range(3)]
    lines += [pm2_line(1, "x" * 200 + f" {i}") for i in range(12000)]
    log.write_text("\n".join(lines) + "\n")
    source = cmd.LogSource("h", "3001/out", str(log), "pm2")
    shell = LocalShell()
    read = read_source(shell, source, LogOptions("backend", lines=2, grep="NEEDLE"),
                       _filter_maker("NEEDLE"), Masker([]))
    assert [text for _, text in read.lines] == [pm2_line(0, "NEEDLE 1"), pm2_line(0, "NEEDLE 2")]
    assert len(shell.commands) > 1 and shell.streamed  # it grew, the larger windows streamed
    assert read.offset == log.stat().st_size and not read.capped


def test_since_stops_growing_at_an_older_line(tmp_path: Path) -> None:
    log = tmp_path / "since.log"
    lines = [pm2_line(0, "old " + "y" * 200) for _ in range(2000)]
    lines += [pm2_line(40, "new")]
    log.write_text("\n".join(lines) + "\n")
    since = datetime(2026, 11, 30, 10, 30, tzinfo=UTC)
    shell = LocalShell()
    read = read_source(shell, cmd.LogSource("h", "x", str(log), "pm2"),
                       LogOptions("backend", since="10:30"), _filter_maker(since=since),
                       Masker([]))
    assert [text for _, text in read.lines] == [pm2_line(40, "new")]
    assert len(shell.commands) == 1  # the first window already reached older lines


def test_a_line_being_written_is_kept_for_the_follow_to_complete(tmp_path: Path) -> None:
    log = tmp_path / "partial.log"
    log.write_text(pm2_line(1, "done") + "\n" + "2026-11-30 10:02:00 +00:00: half")
    source = cmd.LogSource("h", "x", str(log), "pm2")
    snapshot = read_source(LocalShell(), source, LogOptions("backend"), _filter_maker(),
                           Masker([]))
    assert [t for _, t in snapshot.lines][-1].endswith("half")
    following = read_source(LocalShell(), source, LogOptions("backend", follow=True),
                            _filter_maker(), Masker([]))
    assert [t for _, t in following.lines] == [pm2_line(1, "done")]
    assert following.partial.endswith("half") and following.offset == log.stat().st_size


def test_masking_happens_before_grep(tmp_path: Path) -> None:
    log = tmp_path / "secret.log"
    log.write_text(pm2_line(1, "key=hunter2hunter2") + "\n" + pm2_line(2, "plain") + "\n")
    source = cmd.LogSource("h", "x", str(log), "pm2")
    found = read_source(LocalShell(), source, LogOptions("backend", grep="hunter2"),
                        _filter_maker("hunter2"), Masker(["hunter2hunter2"]))
    assert found.lines == []
    shown = read_source(LocalShell(), source, LogOptions("backend"), _filter_maker(),
                        Masker(["hunter2hunter2"]))
    assert "hunter2" not in "".join(t for _, t in shown.lines)


def test_follow_starts_at_the_offset_survives_rotation_and_dies_with_its_stdin(
        tmp_path: Path) -> None:
    log = tmp_path / "follow.log"
    log.write_text("before\n")
    proc = subprocess.Popen(["sh", "-c", cmd.follow(str(log), log.stat().st_size)],
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None and proc.stdin is not None
    try:
        time.sleep(0.5)
        with log.open("a") as handle:
            handle.write("after\n")
        assert proc.stdout.readline() == "after\n"
        log.rename(tmp_path / "follow.log.1")  # rename + create
        log.write_text("rotated\n")
        assert proc.stdout.readline() == "rotated\n"
        log.write_text("")  # copytruncate
        time.sleep(0.5)
        with log.open("a") as handle:
            handle.write("truncated\n")
        assert proc.stdout.readline() == "truncated\n"
    finally:
        proc.stdin.close()  # what sshd does when adapto closes the channel
        proc.wait(timeout=10)
    left = subprocess.run(["pgrep", "-f", str(log)], capture_output=True, text=True)
    assert left.stdout == "", "a tail outlived its stdin"


# --- bad options: exit 2, one line, no host contacted ----------------------------------------


@pytest.fixture(scope="module")
def unreachable_inventory(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The sandbox environment on a closed port: a bad option must fail before connecting."""
    import yaml

    data = yaml.safe_load((REPO / "inventory.yaml").read_text(encoding="utf-8"))
    data["environments"]["sandbox"]["hosts"][0].update(address="127.0.0.1", port=1)
    path = tmp_path_factory.mktemp("logs-cli") / "inventory.yaml"
    path.write_text(yaml.safe_dump(data), encoding="utf-8")
    return path


@pytest.mark.parametrize(("args", "says", "one_line"), [
    (["backend", "--grep", "a(b"], "--grep 'a(b': not a valid regular expression", True),
    (["backend", "--since", "soon"], "--since 'soon': expected a duration", True),
    (["backend", "--instance", "9999"], "--instance 9999: environment 'sandbox' has no instance",
     True),
    (["nginx", "--instance", "3001"], "--instance 3001: only backend logs are per instance",
     True),
    (["backend", "--host", "nope"], "has no host 'nope'", True),
    # click's own usage errors: its usual few lines
    (["backend", "--lines", "-1"], "--lines", False),
    (["everything"], "everything", False),
])
def test_bad_options_are_one_line_and_exit_2(unreachable_inventory: Path, args: list[str],
                                             says: str, one_line: bool) -> None:
    done = subprocess.run([sys.executable, "-m", "adapto_ops", "logs", *args, "-e", "sandbox",
                           "-i", str(unreachable_inventory)], capture_output=True, text=True,
                          cwd=REPO, timeout=60)
    assert done.returncode == 2, done.stderr
    assert says in done.stderr and "unreachable" not in done.stderr
    assert done.stdout == "" and "Traceback" not in done.stderr
    if one_line:
        assert len(done.stderr.strip().splitlines()) == 1, done.stderr


# --- follow: connections for many files ---------------------------------------------------


class CountingTransport:
    """Counts the channels opened on it; a fake, for the arithmetic of Channels only."""

    def __init__(self, name: str) -> None:
        self.host = Host(name=name, address="127.0.0.1")
        self.channels = 0
        self.closed = False

    def stream(self, command: str) -> list[str]:
        self.channels += 1
        return []

    def close(self) -> None:
        self.closed = True


def test_many_files_on_one_host_spread_over_connections_under_maxsessions() -> None:
    from adapto_ops.procedures.logs_follow import CHANNELS_PER_CONNECTION, Channels

    first = CountingTransport("web1")
    made: list[CountingTransport] = []

    def connect(host: str) -> CountingTransport:
        made.append(CountingTransport(host))
        return made[-1]

    channels = Channels([first], connect)
    for _ in range(2 * CHANNELS_PER_CONNECTION + 1):  # e.g. 9 instances: 18 files
        channels.stream("web1", "tail -F x")
    assert CHANNELS_PER_CONNECTION + 2 <= 10  # OpenSSH's default MaxSessions, with the shell
    assert [first.channels, *(t.channels for t in made)] == [CHANNELS_PER_CONNECTION,
                                                             CHANNELS_PER_CONNECTION, 1]
    channels.close()
    assert all(t.closed for t in made) and not first.closed  # the caller closes its own


def test_default_lines_are_kamals_100_and_10_when_following() -> None:
    assert LogOptions("backend").wanted == 100
    assert LogOptions("backend", follow=True).wanted == 10
    assert LogOptions("backend", lines=3, follow=True).wanted == 3
    assert LogOptions("backend", lines=0, follow=True).wanted == 0
