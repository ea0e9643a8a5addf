"""The pure pieces of `adapto recover` and its shell scripts, run locally (no server)."""

from __future__ import annotations

import os
import subprocess
import time
from pathlib import Path

import pytest

from adapto_ops.commands import nginx as nginx_cmd
from adapto_ops.commands import pm2 as pm2_cmd
from adapto_ops.errors import AdaptoError
from adapto_ops.recover.nginx import broken_file, error_line
from adapto_ops.recover.report import HostRecovery, RecoverReport, mask_secrets
from adapto_ops.recover.run import check_what
from tests.test_commands import fake_nginx


def sh(script: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["bash", "-c", script], capture_output=True, text=True, timeout=30)


def test_nginx_error_line_and_the_file_it_names() -> None:
    text = ('nginx: [emerg] 3011#3011: unknown directive "this" in /srv/conf/sites-enabled/'
            'site.conf:179 nginx: configuration file /srv/conf/nginx.conf test failed')
    reason = error_line(text)
    assert reason == 'unknown directive "this" in /srv/conf/sites-enabled/site.conf:179'
    assert broken_file(reason) == "/srv/conf/sites-enabled/site.conf"
    no_file = error_line('nginx: [emerg] cannot load certificate "/x/cert.pem": BIO_new_file() '
                         'failed nginx: configuration file /x/nginx.conf test failed')
    assert no_file.startswith("cannot load certificate") and broken_file(no_file) is None
    assert error_line("") == "nginx -t failed without a message"


def test_secrets_are_masked_longest_first() -> None:
    line = "key=abcdef123 short=abc end"
    assert mask_secrets(line, ["abc", "abcdef123", ""]) == "key=**** short=**** end"


def test_unknown_target_is_bad_input() -> None:
    assert check_what("nginx") == "nginx"
    assert check_what("database") == "database"
    with pytest.raises(AdaptoError) as caught:
        check_what("redis")
    assert caught.value.exit_code == 2 and "backend, nginx, database" in caught.value.message


def test_report_is_healthy_only_when_every_host_is() -> None:
    report = RecoverReport("backend", [HostRecovery("a", healthy=True),
                                       HostRecovery("b", still_failing=["x: port held"])])
    assert not report.healthy and report.still_failing == ["b: x: port held"]


def test_restore_site_puts_the_good_copy_back_and_keeps_the_rejected(tmp_path: Path) -> None:
    nginx = fake_nginx(tmp_path, accepts=True)
    site, enabled = Path(nginx.site_config_path), Path(nginx.site_enabled_path)
    site.parent.mkdir(parents=True)
    site.write_text("broken\n")
    good, rejected = tmp_path / "good.conf", tmp_path / "state" / "rejected.conf"
    good.write_text("good\n")
    result = sh(nginx_cmd.restore_site(nginx, str(good), str(rejected)))
    assert result.returncode == 0 and "RESTORED" in result.stdout, result.stderr
    assert site.read_text() == "good\n" and enabled.resolve() == site
    assert rejected.read_text() == "broken\n"
    again = sh(nginx_cmd.restore_site(nginx, str(good), str(rejected)))
    assert again.returncode == 0 and "SAME" in again.stdout
    missing = sh(nginx_cmd.restore_site(nginx, str(tmp_path / "none"), str(rejected)))
    assert missing.returncode == 4 and "no copy" in missing.stderr


def test_log_tail_reads_the_newest_file_of_each_kind(tmp_path: Path) -> None:
    old, new = tmp_path / "app-error-0.log", tmp_path / "app-error-3.log"
    old.write_text("old\n")
    new.write_text("".join(f"line {i}\n" for i in range(80)))
    past = time.time() - 60
    os.utime(old, (past, past))
    (tmp_path / "app-out-0.log").write_text("out line\n")
    (tmp_path / "other-error-0.log").write_text("not this app\n")
    result = sh(pm2_cmd.log_tail(str(tmp_path), "app", 50))
    lines = result.stdout.splitlines()
    assert lines[0] == f"==> {new} <==" and lines[1] == "line 30" and lines[50] == "line 79"
    assert lines[51:] == [f"==> {tmp_path}/app-out-0.log <==", "out line"]
    assert "old" not in result.stdout and "not this app" not in result.stdout


def test_restart_command_waits_for_the_old_master(tmp_path: Path) -> None:
    nginx = fake_nginx(tmp_path, accepts=True)
    script = nginx_cmd.restart(nginx)
    assert "-s quit" in script and script.rstrip().endswith(f"-c {nginx.main_config_path}")
