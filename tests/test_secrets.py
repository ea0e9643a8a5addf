"""`adapto secrets check|set` without a host: needed names, the file writer, the CLI's refusals."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from adapto_ops.commands.facts import env_file_names
from adapto_ops.facts import EnvFileFacts, parse_env_file_names
from adapto_ops.inventory.model import Environment
from adapto_ops.inventory.secrets import parse_dotenv, secrets_file_warning, set_secret
from adapto_ops.secrets_check import missing_on_host, missing_secrets, needed_secrets
from adapto_ops.selection import select
from tests.e2e_support import REPO, cli_env


def production() -> Environment:
    return select(str(REPO / "inventory.yaml"), "production").env


def test_needed_names_come_from_every_section_that_names_a_secret() -> None:
    needs = {n.name: n for n in needed_secrets(production())}
    assert needs["SUPABASE_ANON_KEY"].needed_by == ("secrets.names", "backend.requires")
    assert "health.probe_token" in needs["ADAPTO_PROBE_TOKEN"].needed_by
    assert "telegram.webhook_secret" in needs["TELEGRAM_WEBHOOK_SECRET"].needed_by
    # The monitor's chat id is a secret outside secrets.names: needed here, never shipped.
    chat = needs["TELEGRAM_CHAT_ID"]
    assert chat.needed_by == ("monitor.alert.telegram_chat_id_secret",) and not chat.on_host
    # backend.requires that have a plain value are not secrets.
    assert "SUPABASE_URL" not in needs


def test_missing_here_names_each_missing_secret_and_never_a_value() -> None:
    env = production()
    have = {n.name: f"value-of-{n.name}" for n in needed_secrets(env)}
    assert missing_secrets(env, have) == []
    del have["GIGACHAT_AUTH_KEY"], have["TELEGRAM_CHAT_ID"]
    have["ADAPTO_PROBE_TOKEN"] = ""  # empty is missing, as resolve_secrets treats it
    problems = missing_secrets(env, have)
    assert [p.name for p in problems] == ["GIGACHAT_AUTH_KEY", "ADAPTO_PROBE_TOKEN",
                                          "TELEGRAM_CHAT_ID"]
    assert all(p.where == "local" and p.failing for p in problems)
    assert "not in secrets.names" in problems[-1].message
    text = repr([p.as_dict() for p in problems])
    assert "value-of-" not in text


def test_missing_on_host_checks_names_mode_and_owner() -> None:
    env = production()
    shipped = frozenset(env.secrets.names)
    good = EnvFileFacts(True, 0o600, "root", shipped)
    assert missing_on_host(env, "prod1", "root", good, "/x/.env") == []
    bad = EnvFileFacts(True, 0o644, "www-data", shipped - {"GIGACHAT_AUTH_KEY"})
    problems = missing_on_host(env, "prod1", "root", bad, "/x/.env")
    kinds = [(p.kind, p.name) for p in problems]
    assert kinds == [("permissions", ""), ("permissions", ""), ("missing", "GIGACHAT_AUTH_KEY")]
    assert "0644" in problems[0].message and "www-data" in problems[1].message
    absent = missing_on_host(env, "prod1", "root", EnvFileFacts(False), "/x/.env")
    assert [(p.kind, p.failing) for p in absent] == [("not-deployed", False)]


def test_the_host_read_prints_names_mode_and_owner_only(tmp_path: Path) -> None:
    env_file = tmp_path / ".env"
    env_file.write_text('A=secret-a\nexport B="secret b"\nEMPTY=\nQ=""\n#C=3\nD=\'d\'\r\n')
    env_file.chmod(0o600)
    out = subprocess.run(["sh", "-c", env_file_names(str(env_file))], capture_output=True,
                         text=True, check=True).stdout
    assert "secret" not in out
    facts = parse_env_file_names(out)
    assert facts.exists and facts.mode == 0o600 and facts.names == {"A", "B", "D"}
    gone = subprocess.run(["sh", "-c", env_file_names(str(tmp_path / "none"))],
                          capture_output=True, text=True, check=True).stdout
    assert parse_env_file_names(gone) == EnvFileFacts(False)


def test_set_secret_keeps_other_lines_and_writes_0600_atomically(tmp_path: Path) -> None:
    path = tmp_path / "s" / "secrets.env"
    path.parent.mkdir()
    path.write_text("# comment\nA=1\nexport B=2\nB=dup\nC=3")
    path.chmod(0o644)
    with path.open() as before:  # held open, so its inode cannot be reused
        assert set_secret(path, "B", 'new "value"\nline2') is False
        # Replaced by rename, never rewritten in place: a reader sees old or new, whole.
        assert path.stat().st_ino != os.fstat(before.fileno()).st_ino
    assert set_secret(path, "D", "4") is True
    text = path.read_text()
    assert text.startswith("# comment\nA=1\n") and text.endswith("C=3\nD=4\n")
    assert parse_dotenv(text) == {"A": "1", "B": 'new "value"\nline2', "C": "3", "D": "4"}
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert [p.name for p in path.parent.iterdir()] == ["secrets.env"]  # no temporary left


def test_a_group_or_world_readable_secrets_file_is_named(tmp_path: Path) -> None:
    path = tmp_path / "secrets.env"
    path.write_text("A=1\n")
    path.chmod(0o600)
    assert secrets_file_warning(path) is None
    path.chmod(0o640)
    assert "its group" in (secrets_file_warning(path) or "")
    path.chmod(0o604)
    assert "chmod 600" in (secrets_file_warning(path) or "")


@pytest.fixture
def inventory(tmp_path: Path) -> Path:
    data = yaml.safe_load((REPO / "inventory.yaml").read_text())
    env = data["environments"]["sandbox"]
    env["secrets"]["file"] = str(tmp_path / "secrets.env")
    data["environments"] = {"sandbox": env}
    path = tmp_path / "inventory.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def cli(*args: str, stdin: str = "") -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "adapto_ops", *args], input=stdin,
                          capture_output=True, text=True, env=cli_env(), timeout=60, check=False)


def test_set_reads_stdin_and_check_reports_what_is_left(inventory: Path) -> None:
    value = "Canary-7c1f0e9a-set-from-stdin"
    done = cli("secrets", "set", "JWT_SECRET", "-e", "sandbox", "-i", str(inventory),
               stdin=value + "\n")
    assert done.returncode == 0, done.stderr
    secrets_file = inventory.parent / "secrets.env"
    assert parse_dotenv(secrets_file.read_text()) == {"JWT_SECRET": value}
    assert stat.S_IMODE(secrets_file.stat().st_mode) == 0o600
    check = cli("secrets", "check", "-e", "sandbox", "-i", str(inventory), "--local", "--json")
    assert check.returncode == 1, check.stderr
    import json

    report = json.loads(check.stdout)
    missing = {p["name"] for p in report["problems"] if p["kind"] == "missing"}
    assert "JWT_SECRET" not in missing and "SUPABASE_ANON_KEY" in missing
    for result in (done, check):
        assert value not in result.stdout + result.stderr


def test_set_refuses_a_value_in_argv_and_an_unknown_name(inventory: Path) -> None:
    value = "Canary-argv-5d2e"
    argv = cli("secrets", "set", "JWT_SECRET", value, "-e", "sandbox", "-i", str(inventory),
               stdin="x")
    assert argv.returncode == 2 and "refusing a value given on the command line" in argv.stderr
    assert value not in argv.stdout + argv.stderr
    assert not (inventory.parent / "secrets.env").exists()
    unknown = cli("secrets", "set", "NOPE", "-e", "sandbox", "-i", str(inventory), stdin="x")
    assert unknown.returncode == 2
    assert unknown.stderr.startswith("error: ") and "NOPE is not in secrets.names" in unknown.stderr
    empty = cli("secrets", "set", "JWT_SECRET", "-e", "sandbox", "-i", str(inventory), stdin="")
    assert empty.returncode == 2 and "no value on stdin" in empty.stderr


def test_check_warns_about_a_readable_secrets_file(inventory: Path) -> None:
    secrets_file = inventory.parent / "secrets.env"
    names = yaml.safe_load(inventory.read_text())["environments"]["sandbox"]["secrets"]["names"]
    secrets_file.write_text("".join(f"{n}=v-{n}\n" for n in names))
    os.chmod(secrets_file, 0o600)
    ok = cli("secrets", "check", "-e", "sandbox", "-i", str(inventory), "--local")
    assert ok.returncode == 0, ok.stdout + ok.stderr
    assert "all secrets set" in ok.stdout
    os.chmod(secrets_file, 0o644)
    loose = cli("secrets", "check", "-e", "sandbox", "-i", str(inventory), "--local")
    assert loose.returncode == 1 and "mode 0644" in loose.stdout, loose.stdout
    assert "v-" not in loose.stdout + loose.stderr


def test_every_command_warns_once_about_a_readable_secrets_file(inventory: Path) -> None:
    secrets_file = inventory.parent / "secrets.env"
    secrets_file.write_text("JWT_SECRET=Canary-render-3b9d\n")
    os.chmod(secrets_file, 0o644)
    rendered = cli("render", "env", "-e", "sandbox", "-i", str(inventory))
    assert rendered.returncode == 0, rendered.stderr
    assert rendered.stderr.count("mode 0644 lets others read") == 1, rendered.stderr
    assert "Canary-render" not in rendered.stdout + rendered.stderr
    os.chmod(secrets_file, 0o600)
    quiet = cli("render", "env", "-e", "sandbox", "-i", str(inventory))
    assert "lets others read" not in quiet.stderr


def test_a_url_secret_is_masked_whole_and_its_password_alone() -> None:
    from adapto_ops.logs.lines import Masker
    from adapto_ops.recover.report import mask_secrets

    url = "postgresql://ai_app:Pw%2FCanary9x7q@127.0.0.1:5432/aiplatform"
    line = (f"connect {url} failed; dsn host=127.0.0.1 password=Pw%2FCanary9x7q "
            "(decoded Pw/Canary9x7q)")
    for masked in (Masker([url])(line), mask_secrets(line, [url])):
        assert "Canary9x7q" not in masked and "host=127.0.0.1" in masked, masked
    # A short password would mask ordinary words: only the whole URL is masked then.
    short = "postgresql://u:pg@h/db"
    assert Masker([short])("pg_ctl and " + short) == "pg_ctl and ****(22 chars)"


def test_a_failed_deploy_puts_the_replaced_env_back(tmp_path: Path) -> None:
    from adapto_ops.commands import release as rel
    from adapto_ops.layout import ReleaseLayout

    layout = ReleaseLayout(str(tmp_path))
    for rid in ("a", "b"):
        (tmp_path / "releases" / rid).mkdir(parents=True)
    shared = tmp_path / "shared"
    shared.mkdir()
    (shared / ".env").write_text("K=old\n")
    (shared / ".env").chmod(0o600)
    (shared / ".env.next-b").write_text("K=new-and-wrong\n")
    (shared / ".env.next-b").chmod(0o600)

    def sh(command: str) -> None:
        result = subprocess.run(["sh", "-c", command], capture_output=True, text=True)
        assert result.returncode == 0, result.stderr

    sh(rel.switch(layout, "b"))
    assert (shared / ".env").read_text() == "K=new-and-wrong\n"
    backup = Path(rel.env_backup(layout))
    assert backup.read_text() == "K=old\n" and stat.S_IMODE(backup.stat().st_mode) == 0o600
    sh(rel.restore_env(layout) + " && " + rel.switch(layout, "a"))
    assert (shared / ".env").read_text() == "K=old\n" and not backup.exists()
    # Live: the replaced one is dropped, so a rotated secret does not linger on the host.
    (shared / ".env.next-b").write_text("K=new\n")
    sh(rel.switch(layout, "b") + " && " + rel.forget_env_backup(layout))
    assert (shared / ".env").read_text() == "K=new\n" and not backup.exists()
    sh(rel.restore_env(layout))  # nothing to restore: a no-op
    assert (shared / ".env").read_text() == "K=new\n"
