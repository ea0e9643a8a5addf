"""No secret value in any output: every command of the CLI, run for real against a sandbox.

One sandbox on this module's slot (127.0.0.151, with the environment's
PostgreSQL), whose secrets have known, distinctive values (the database
passwords are the ones `sandbox up` generates, read back from the secrets
file). :data:`SWEEP` then runs every command the Typer app registers, each with
arguments that make it do real work — deploys, a rollback, recoveries, the
monitor and its installation, the bot's webhook against a fake Bot API, failing
deploys whose error path involves a wrong or malformed database URL — and every
stdout and stderr is searched for every value (whole, any 16-character piece
of it, base64 and URL-quoted). The files adapto writes that a user would share
(the monitor's JSONL, the JUnit XML, the GitHub step summary, the deploy
history on the host) are searched the same way.

`test_every_command_has_a_sweep_entry` (no sandbox) fails when a command is
registered without an entry here: a new command must say how to sweep it.
The e2e test also checks the host's shared .env (and a staged one, caught while
a deploy runs) is 0600 and owned by the deploy user.
"""

from __future__ import annotations

import base64
import secrets
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlsplit, urlunsplit

import httpx
import pytest

from adapto_ops.inventory.secrets import parse_dotenv
from tests.e2e_support import REPO, cli_env, said, sandbox_marks
from tests.fake_telegram import FakeTelegram
from tests.operate_sandbox import ENV, SERVER_NAME, OpBox, Slot, deployed_sandbox

SLOT = Slot("127.0.0.151", 2451, 8451, 8551, (3451, 3452))
_TAG = secrets.token_hex(4)
BOT_TOKEN = f"7301234567:LeakCanaryBot_{_TAG}_tok"
CHAT_ID = "-1007319284650"
# Known values, written to the secrets file before `sandbox up` (which keeps them).
PLANTED = {
    "SUPABASE_ANON_KEY": f"LeakCanaryAnon-{_TAG}-eyJhbGciOi",
    "ADAPTO_PROBE_TOKEN": f"LeakCanaryProbe-{_TAG}-9f8e7d6c",
    "JWT_SECRET": f"LeakCanaryJwt-{_TAG}-0123456789abcdef0123456789",
    "TELEGRAM_BOT_TOKEN": BOT_TOKEN,
    "TELEGRAM_WEBHOOK_SECRET": f"LeakCanaryHook-{_TAG}-a1b2c3d4",
    "TELEGRAM_CHAT_ID": CHAT_ID,
}
NEW_ANON = f"LeakCanaryAnonRotated-{_TAG}-Zx9Yw8"
NEW_JWT = f"LeakCanaryJwtPushed-{_TAG}-4e5f6a7b8c9d0e1f2a3b"
WRONG_PASSWORD = f"LeakCanaryWrongPw{_TAG}q7"
MALFORMED_PASSWORD = f"LeakCanaryBadUrlPw{_TAG}k3"
MIN_FRAGMENT = 16


# --- the detector ------------------------------------------------------------------------

def fragments(value: str) -> set[str]:
    """What of ``value`` must never be shown: any 16-char piece, its base64, its URL quoting."""
    n = min(MIN_FRAGMENT, len(value))
    pieces = {value[i:i + n] for i in range(len(value) - n + 1)}
    pieces.add(base64.b64encode(value.encode()).decode().rstrip("="))
    pieces.add(quote(value, safe=""))
    return pieces


def leaks(text: str, known: dict[str, str]) -> list[str]:
    """The names of the ``known`` secrets of which some piece appears in ``text``."""
    return [name for name, value in known.items()
            if any(piece in text for piece in fragments(value))]


def test_the_detector_finds_a_planted_value_whole_cut_or_encoded() -> None:
    known = {"A": PLANTED["SUPABASE_ANON_KEY"], "CHAT": CHAT_ID}
    value = known["A"]
    assert leaks("nothing to see: ****(31 chars)", known) == []
    assert leaks(f"error: bad key {value}", known) == ["A"]
    assert leaks(f"key starts {value[3:21]}...", known) == ["A"]  # a truncated value
    assert leaks(base64.b64encode(f"x:{value}".encode()).decode(), known) == []  # shifted
    assert leaks(base64.b64encode(value.encode()).decode(), known) == ["A"]
    assert leaks(f"chat_id={CHAT_ID}", known) == ["CHAT"]
    assert leaks(f"?token={quote(BOT_TOKEN, safe='')}", {"T": BOT_TOKEN}) == ["T"]


# --- the sweep table -----------------------------------------------------------------------

@dataclass(frozen=True)
class Step:
    """One run: ``command`` (a registered path), its arguments, what it must exit with.

    ``{name}`` in an argument or ``stdin`` is filled from the run's context (paths, values).
    ``codes`` None: any exit code (an error path); ``env``: append -e/-i.
    ``before``/``after``: names of hooks in :func:`hooks` run around it.
    """

    command: str
    args: tuple[str, ...] = ()
    codes: tuple[int, ...] | None = (0,)
    env: bool = True
    stdin: str | None = None
    before: str | None = None
    after: str | None = None
    extra_env: tuple[tuple[str, str], ...] = ()
    # Seconds after which it gets SIGINT, as Ctrl-C (for --follow, which never ends).
    interrupt_after: float | None = None
    # Text that must not be in its output (a step that must fail in one way only).
    absent: str | None = None


SKIP = "--skip-build"
SWEEP: list[Step] = [
    Step("secrets check"),
    Step("secrets check", ("--json",)),
    Step("secrets check", ("--local", "--verbose")),
    Step("secrets check", ("--local",), codes=(1,), before="loosen_secrets_file",
         after="tighten_secrets_file"),
    Step("secrets set", ("JWT_SECRET", "{JWT_SECRET}"), codes=(2,)),
    Step("secrets set", ("NOT_A_SECRET",), codes=(2,), stdin="{JWT_SECRET}"),
    Step("render", ("all",)),
    Step("render", ("env",)),
    Step("render", ("nginx", "--verbose")),
    Step("render", ("all", "--check")),
    Step("render", ("all", "--out", "{base}/rendered")),
    Step("init", ("{base}/reports/inventory.yaml",), env=False),
    Step("releases"),
    Step("releases", ("--json",)),
    Step("status"),
    Step("status", ("--json",)),
    Step("status", ("--verbose",)),
    # Health and the monitor judge a live sandbox: on a loaded CI machine one check (the
    # WebSocket echo, say) may fail; the sweep is about what they print, so 1 is fine too.
    Step("health", codes=(0, 1)),
    Step("health", ("--json",), codes=(0, 1)),
    Step("health", ("--junit", "{base}/reports/health.xml", "--verbose"), codes=(0, 1),
         extra_env=(("GITHUB_ACTIONS", "true"),
                    ("GITHUB_STEP_SUMMARY", "{base}/reports/summary.md"))),
    Step("ssl status"),
    Step("ssl status", ("--json", "--verbose")),
    Step("ssl self-signed", ("--dry-run",)),
    Step("ssl self-signed", ("--yes", "--json")),
    Step("ssl install", ("--cert", "{base}/sandbox1/tls/cert.pem",
                         "--key", "{base}/sandbox1/tls/key.pem", "--dry-run", "--verbose")),
    Step("ssl install", ("--cert", "{base}/sandbox1/tls/cert.pem",
                         "--key", "{base}/sandbox1/tls/key.pem", "--yes"), codes=None),
    # The sandbox's tls.mode is self-signed: certbot's commands refuse, in one line.
    Step("ssl issue", ("--dry-run", "--verbose"), codes=None),
    Step("ssl renew", ("--dry-run", "--json"), codes=None),
    # firewall.manage is false on a sandbox: plan and status read ufw, apply refuses.
    Step("firewall plan", codes=None),
    Step("firewall status", ("--json", "--verbose"), codes=None),
    Step("firewall apply", ("--dry-run",), codes=None),
    Step("logs", ("backend",), before="plant_log_lines"),
    Step("logs", ("nginx",)),
    Step("logs", ("nginx-access", "--grep", "{SUPABASE_ANON_KEY}"), codes=None),
    Step("logs", ("backend", "--grep", "token", "--lines", "50", "--verbose")),
    Step("logs", ("nginx-error",)),
    Step("logs", ("backend", "--follow"), interrupt_after=6.0, before="plant_log_lines_later"),
    Step("db status"),
    Step("db status", ("--json",)),
    Step("db migrate"),
    Step("db migrate", ("--json", "--verbose")),
    Step("db check"),
    Step("db check", ("--json", "--verbose")),
    # Warnings (no monitor history, firewall not managed) or a fail (pending updates are
    # only warnings; the health of a sandbox mid-sweep may fail): the output is the point.
    Step("audit", codes=(0, 1)),
    Step("audit", ("--json", "--junit", "{base}/reports/audit.xml", "--verbose"), codes=(0, 1)),
    Step("recover", ("backend", "--dry-run")),
    Step("recover", ("nginx", "--dry-run")),
    Step("recover", ("database", "--dry-run", "--verbose")),
    Step("recover", ("backend", "--yes")),
    Step("recover", ("nginx", "--yes", "--json")),
    Step("recover", ("database", "--yes")),
    Step("monitor", ("--once",), codes=(0, 1)),
    Step("monitor", ("--once", "--json", "--alert", "telegram"), codes=(0, 1)),
    Step("monitor", ("--rounds", "2", "--interval", "0.5", "--json", "--verbose"), codes=(0, 1)),
    Step("monitor install", ("--dry-run",)),
    Step("monitor install", ("--json",)),
    Step("monitor uninstall"),
    Step("telegram webhook set"),
    Step("telegram webhook info"),
    Step("telegram webhook info", ("--json",)),
    Step("telegram webhook delete", ("--json",)),
    # A rotated value: the dry run diffs the .env (names only), the deploys ship it.
    Step("secrets set", ("SUPABASE_ANON_KEY",), stdin="{NEW_ANON}\n"),
    Step("deploy", ("all", "--dry-run", SKIP)),
    Step("deploy", ("backend", "--dry-run", SKIP, "--verbose", "--json")),
    Step("deploy", ("backend", "--yes", SKIP), before="watch_staged_env", after="stop_watching"),
    Step("deploy", ("all", "--yes", SKIP, "--force", "--json", "--verbose")),
    Step("secrets set", ("JWT_SECRET", "--push"), stdin="{NEW_JWT}"),
    Step("rollback", ("--yes",)),
    Step("rollback", ("--yes", "--json")),
    Step("deploy", ("all", "--yes", SKIP, "--force")),
    # Error paths that carry a secret: the migration's URL with a wrong password, then the
    # backend's URL malformed (parsers like to quote what they could not parse).
    Step("secrets set", ("MIGRATION_DATABASE_URL",), stdin="{WRONG_MIGRATION_URL}"),
    Step("deploy", ("backend", "--yes", SKIP, "--force"), codes=(1,)),
    Step("deploy", ("backend", "--yes", SKIP, "--force", "--json", "--verbose"), codes=(1,)),
    Step("secrets set", ("MIGRATION_DATABASE_URL",), stdin="{MIGRATION_DATABASE_URL}"),
    Step("secrets set", ("DATABASE_URL",), stdin="{MALFORMED_DATABASE_URL}"),
    # The gate fails on the new .env; the rollback puts the old .env back, and so succeeds.
    Step("deploy", ("backend", "--yes", SKIP, "--force", "--verbose"), codes=(1,),
         absent="rollback failed too"),
    # The malformed URL written into the host's .env by hand, as the runbook's heredoc does.
    Step("health", ("--verbose",), codes=None, before="break_host_env"),
    Step("health", ("--json",), codes=None),
    Step("status", ("--json",), codes=None),
    Step("db status", ("--verbose",), codes=None),
    Step("db check", ("--verbose",), codes=None),
    Step("audit", ("--json",), codes=None),
    Step("recover", ("database", "--dry-run"), codes=None),
    Step("recover", ("database", "--yes", "--verbose"), codes=None),
    Step("monitor", ("--once", "--json"), codes=None),
    Step("secrets set", ("DATABASE_URL",), stdin="{DATABASE_URL}", before="mend_host_env"),
    Step("deploy", ("backend", "--yes", SKIP, "--force")),
    Step("health", codes=(0, 1)),
    Step("sandbox status"),
    Step("sandbox up"),
    Step("sandbox down"),
]


def registered_commands() -> set[str]:
    """Every command path of the Typer app, recursively; a group that runs by itself too."""
    import typer.main

    from adapto_ops.cli import app

    paths: set[str] = set()

    def walk(command: Any, path: list[str]) -> None:
        subcommands = getattr(command, "commands", None)
        if subcommands is None:
            paths.add(" ".join(path))
            return
        if path and getattr(command, "invoke_without_command", False):
            paths.add(" ".join(path))  # `adapto monitor` runs the monitor itself
        for name, sub in subcommands.items():
            walk(sub, [*path, name])

    walk(typer.main.get_command(app), [])
    return paths


def test_every_command_has_a_sweep_entry() -> None:
    registered = registered_commands()
    swept = {step.command for step in SWEEP}
    unswept = sorted(registered - swept)
    assert not unswept, (
        f"commands without a secret-leak sweep entry: {', '.join(unswept)}. Add a Step to "
        "SWEEP in tests/test_secret_leak_e2e.py with arguments that make each do real work "
        "against the sandbox (and its --json/--dry-run/--verbose variants)")
    stale = sorted(swept - registered)
    assert not stale, f"SWEEP names commands that no longer exist: {', '.join(stale)}"


# --- the sandbox and the run -------------------------------------------------------------

def e2e(test: Callable[..., None]) -> Callable[..., None]:
    """Marked e2e and slow, skipped (saying why) where a sandbox cannot run."""
    for mark in (pytest.mark.e2e, pytest.mark.slow, *sandbox_marks()):
        test = mark(test)
    return test


@pytest.fixture(scope="module")
def fake() -> Iterator[FakeTelegram]:
    server = FakeTelegram(BOT_TOKEN, CHAT_ID).start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def box(tmp_path_factory: pytest.TempPathFactory, fake: FakeTelegram) -> Iterator[OpBox]:
    base = tmp_path_factory.mktemp("leak")
    (base / ".adapto").mkdir()
    secrets_file = base / ".adapto" / "secrets.env"
    secrets_file.write_text("".join(f"{k}={v}\n" for k, v in PLANTED.items()))
    secrets_file.chmod(0o600)
    (base / "reports").mkdir()
    # The installed monitor runs on the "host", this machine: it must import this checkout.
    python = base / "adapto-python"
    python.write_text(f"#!/bin/sh\nPYTHONPATH={REPO} exec {sys.executable} \"$@\"\n")
    python.chmod(0o755)

    def adjust(env: dict[str, Any]) -> None:
        env["secrets"]["names"] += ["TELEGRAM_BOT_TOKEN", "TELEGRAM_WEBHOOK_SECRET"]
        env["telegram"] = {"api_base": fake.api_base}
        env["backend"]["env"]["TELEGRAM_API_BASE"] = fake.api_base  # never the real API
        env["monitor"] = {**env["monitor"], "python": str(python), "interval_s": 1.0,
                          "alert": {"channel": "telegram", "telegram_api_base": fake.api_base}}

    with deployed_sandbox(base, SLOT, adjust=adjust) as deployed:
        yield deployed


def known_secrets(box: OpBox) -> dict[str, str]:
    """Every value to look for: the planted ones, the database passwords, the rotated ones."""
    values = parse_dotenv((box.base / ".adapto" / "secrets.env").read_text())
    known = dict(PLANTED)
    for name in ("DATABASE_URL", "MIGRATION_DATABASE_URL"):
        password = urlsplit(values[name]).password
        assert password and len(password) >= MIN_FRAGMENT, f"{name}: a short password"
        known[f"{name} password"] = password
    known |= {"rotated SUPABASE_ANON_KEY": NEW_ANON, "pushed JWT_SECRET": NEW_JWT,
              "a wrong password": WRONG_PASSWORD, "a malformed URL's password": MALFORMED_PASSWORD}
    return known


def context(box: OpBox) -> dict[str, str]:
    values = parse_dotenv((box.base / ".adapto" / "secrets.env").read_text())
    migration = urlsplit(values["MIGRATION_DATABASE_URL"])
    wrong = migration._replace(
        netloc=f"{migration.username}:{WRONG_PASSWORD}@{migration.hostname}:{migration.port}")
    app = urlsplit(values["DATABASE_URL"])
    malformed = f"postgresql://{app.username}:{MALFORMED_PASSWORD}@[{app.hostname}:x/{_TAG}"
    return {**PLANTED, "base": str(box.base), "NEW_ANON": NEW_ANON, "NEW_JWT": NEW_JWT,
            "DATABASE_URL": values["DATABASE_URL"],
            "MIGRATION_DATABASE_URL": values["MIGRATION_DATABASE_URL"],
            "WRONG_MIGRATION_URL": urlunsplit(wrong), "MALFORMED_DATABASE_URL": malformed}


def run_cli(argv: list[str], stdin: str | None, extra_env: dict[str, str],
            interrupt_after: float | None = None,
            timeout: float = 300) -> subprocess.CompletedProcess[str]:
    """`python -m adapto_ops ARGV`, output in files (daemons started underneath keep pipes)."""
    import signal

    with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err, \
            tempfile.TemporaryFile("w+") as inp:
        inp.write(stdin or "")
        inp.seek(0)
        proc = subprocess.Popen([sys.executable, "-m", "adapto_ops", *argv], cwd=REPO,
                                stdin=inp if stdin is not None else subprocess.DEVNULL,
                                stdout=out, stderr=err, env=cli_env() | extra_env)
        try:
            if interrupt_after is not None:
                time.sleep(interrupt_after)
                proc.send_signal(signal.SIGINT)
            code = proc.wait(timeout)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
        out.seek(0)
        err.seek(0)
        return subprocess.CompletedProcess(proc.args, code, out.read(), err.read())


@dataclass
class EnvWatch:
    """Stats of the shared .env and staged ones (.env.next-*), polled while a deploy runs."""

    seen: list[tuple[str, int, int]]
    stop: threading.Event
    thread: threading.Thread | None = None


def stat_env_files(box: OpBox) -> list[tuple[str, int, int]]:
    """(name, mode, uid) of the shared .env, a staged one and the one a deploy replaced."""
    found = []
    for path in (box.root / "shared").glob(".env*"):
        try:
            st = path.stat()
        except FileNotFoundError:
            continue  # moved into place between the glob and the stat
        found.append((path.name, st.st_mode & 0o777, st.st_uid))
    return found


def hooks(box: OpBox, watch: EnvWatch, ctx: dict[str, str]) -> dict[str, Callable[[], None]]:
    secrets_file = box.base / ".adapto" / "secrets.env"

    def plant_log_lines() -> None:
        # What an app or a client may really write: the secret in a log line, in a URL.
        out_log = box.log_dir / f"ai-platform-backend-{SLOT.ports[0]}-out.log"
        stamp = time.strftime("%Y-%m-%d %H:%M:%S +00:00", time.gmtime())
        with out_log.open("a") as handle:
            url = ctx["DATABASE_URL"]
            handle.write(f"{stamp}: debug token={PLANTED['SUPABASE_ANON_KEY']} url={url}\n"
                         f"{stamp}: dsn host={SLOT.address} password={urlsplit(url).password}\n")
        httpx.get(f"https://{SLOT.address}:{SLOT.https_port}/api/health",
                  params={"token": PLANTED["SUPABASE_ANON_KEY"]},
                  headers={"Host": SERVER_NAME}, verify=False, timeout=10, trust_env=False)

    host_env = box.root / "shared" / ".env"
    kept: list[str] = []

    def break_host_env() -> None:
        text = host_env.read_text()
        kept.append(text)
        lines = [f"DATABASE_URL={ctx['MALFORMED_DATABASE_URL']}"
                 if ln.startswith("DATABASE_URL=") else ln for ln in text.split("\n")]
        host_env.write_text("\n".join(lines))  # in place: mode and owner stay

    def mend_host_env() -> None:
        host_env.write_text(kept.pop())

    def plant_log_lines_later() -> None:
        # Lines that arrive while `logs --follow` streams, not only the window it starts with.
        timer = threading.Timer(3.0, plant_log_lines)
        timer.daemon = True
        timer.start()

    def poll() -> None:
        while not watch.stop.is_set():
            watch.seen += [s for s in stat_env_files(box) if s[0] != ".env"]
            time.sleep(0.005)

    def watch_staged_env() -> None:
        watch.stop.clear()
        watch.thread = threading.Thread(target=poll, daemon=True)
        watch.thread.start()

    def stop_watching() -> None:
        watch.stop.set()
        if watch.thread is not None:
            watch.thread.join(5)

    return {
        "loosen_secrets_file": lambda: secrets_file.chmod(0o644),
        "tighten_secrets_file": lambda: secrets_file.chmod(0o600),
        "plant_log_lines": plant_log_lines,
        "plant_log_lines_later": plant_log_lines_later,
        "break_host_env": break_host_env,
        "mend_host_env": mend_host_env,
        "watch_staged_env": watch_staged_env,
        "stop_watching": stop_watching,
    }


def shared_files(box: OpBox) -> list[Path]:
    """Files adapto wrote that a user would share or attach to a bug report."""
    local = [p for p in (box.base / ".adapto").rglob("*")
             if p.is_file() and not p.name.startswith(("secrets.env", ".secrets.env"))]
    written = [p for p in (box.base / "reports").rglob("*") if p.is_file()]
    history = [p for p in (box.root / ".adapto").rglob("*") if p.is_file()]
    return local + written + history


@e2e
def test_the_remote_shell_files_are_0600_before_any_byte_arrives(box: OpBox) -> None:
    """Bulk stdin (a release tarball, the .env inside) and each command's output file."""
    from adapto_ops.deploy.session import open_transport
    from adapto_ops.remote import HEREDOC_STDIN_MAX, INLINE_STDIN_MAX
    from adapto_ops.selection import select

    selection = select(str(box.inventory), ENV)
    transport = open_transport(selection, selection.targets[0])
    seen: list[int | None] = []
    real_upload = transport._upload

    def upload(data: bytes, path: str, progress: Any) -> None:
        sftp = transport._connection.client.open_sftp()
        try:
            seen.append(sftp.stat(path).st_mode & 0o777)  # before SFTP opens and writes it
        except FileNotFoundError:
            seen.append(None)  # SFTP would create it with its own umask
        finally:
            sftp.close()
        real_upload(data, path, progress)

    transport._upload = upload  # type: ignore[method-assign]
    probe = "stat -L -c %a /proc/self/fd/0 /proc/self/fd/1; umask; wc -c"
    # Each way bulk stdin travels: a here-document on the shell's own channel (mid-sized),
    # and SFTP (large), both into the same stdin file.
    sizes = (INLINE_STDIN_MAX * 2, HEREDOC_STDIN_MAX * 2)
    try:
        results = [(size, transport.run(probe, stdin=secrets.token_bytes(size)))
                   for size in sizes]
    finally:
        transport.close()
    assert seen == [0o600], seen  # the one SFTP upload found the file already 0600
    for size, result in results:
        stdin_mode, stdout_mode, umask, got = result.stdout.split()
        assert (stdin_mode, stdout_mode, int(got)) == ("600", "600", size), result.stdout
        assert umask != "0077", "commands must keep the login umask (releases are read by nginx)"


@e2e
def test_no_command_prints_a_secret(box: OpBox) -> None:
    known = known_secrets(box)
    ctx = context(box)
    watch = EnvWatch([], threading.Event())
    run_hooks = hooks(box, watch, ctx)
    problems: list[str] = []
    env_modes: list[tuple[str, int, int]] = []
    started = time.monotonic()
    for i, step in enumerate(SWEEP):
        args = [a.format(**ctx) for a in step.args]
        argv = [*step.command.split(), *args]
        if step.env:
            argv += ["-e", ENV, "-i", str(box.inventory)]
        if step.before:
            run_hooks[step.before]()
        try:
            result = run_cli(argv, None if step.stdin is None else step.stdin.format(**ctx),
                             {k: v.format(**ctx) for k, v in step.extra_env},
                             step.interrupt_after)
        finally:
            if step.after:
                run_hooks[step.after]()
        shown = " ".join(step.command.split() + list(step.args))
        with (box.base / "sweep-output.txt").open("a") as record:  # to read after a run
            record.write(f"=== #{i} adapto {shown}\n{said(result)}\n")
        found = leaks(result.stdout + result.stderr, known)
        if found:
            problems.append(f"#{i} adapto {shown}: prints {', '.join(found)}")
        if step.absent and step.absent in result.stdout + result.stderr:
            problems.append(f"#{i} adapto {shown}: says {step.absent!r}\n"
                            f"{said(result)[-3000:]}")
        if step.codes is not None and result.returncode not in step.codes:
            problems.append(f"#{i} adapto {shown}: exit {result.returncode}, expected "
                            f"{step.codes}\n{said(result)[-3000:]}")
        if step.command == "deploy":
            env_modes += stat_env_files(box)
    for path in shared_files(box):
        found = leaks(path.read_text(errors="replace"), known)
        if found:
            problems.append(f"{path}: holds {', '.join(found)}")
    commands = {s.command for s in SWEEP}
    print(f"\nsecret-leak sweep: {len(SWEEP)} runs of {len(commands)} commands, "
          f"{len(known)} secret values, {len(shared_files(box))} written files scanned, "
          f"{time.monotonic() - started:.0f} s; staged .env seen {len(watch.seen)} times")
    assert not problems, "\n".join(problems)
    # The .env on the host: 0600 and the deploy user's (root in the sandbox), from its creation.
    assert env_modes and all(mode == 0o600 and uid == 0 for _, mode, uid in env_modes), env_modes
    assert all(mode == 0o600 and uid == 0 for _, mode, uid in watch.seen), watch.seen
    assert (box.base / ".adapto" / "secrets.env").stat().st_mode & 0o777 == 0o600
