"""Facts: the host-state reader's pure parts, and its PM2 reducer run by a real node."""

from __future__ import annotations

import datetime as dt
import json
import shutil
import subprocess
from pathlib import Path

import pytest

from adapto_ops.commands import facts as facts_cmd
from adapto_ops.facts import (
    Pm2Process,
    PortHolder,
    parse_certificate,
    parse_facts,
    parse_listeners,
    parse_pm2,
    parse_ufw,
    split_sections,
)

SECRET = "s3cr3t-value-that-must-not-travel"

JLIST = [
    {"name": "ai-platform-backend-3001", "pid": 101, "pm_id": 0,
     "monit": {"memory": 31457280, "cpu": 1.5},
     "pm2_env": {"status": "online", "restart_time": 2, "unstable_restarts": 0,
                 "pm_uptime": 0, "namespace": "ai-platform-backend", "PORT": "3001",
                 "SUPABASE_ANON_KEY": SECRET, "env": {"SUPABASE_ANON_KEY": SECRET},
                 "pm_cwd": "/srv/app/releases/1/backend"}},
    {"name": "ai-platform-backend-3002", "pid": 0, "pm_id": 1, "monit": {},
     "pm2_env": {"status": "waiting restart", "restart_time": 7, "unstable_restarts": 7,
                 "namespace": "ai-platform-backend", "env": {"PORT": "3002"}}},
]


def reduce_with_node(text: str) -> str:
    node = shutil.which("node")
    if node is None:
        pytest.skip("node is not installed")
    result = subprocess.run([node, "-e", facts_cmd.PM2_REDUCE_JS], input=text,
                            capture_output=True, text=True, timeout=30, check=True)
    return result.stdout


def test_pm2_reducer_drops_the_environment_and_skips_warning_text() -> None:
    noisy = ("[PM2][WARN] Current process list is not synchronized with saved list.\n"
             ">>>> In-memory PM2 is out-of-date, do:\n" + json.dumps(JLIST) + "\n")
    out = reduce_with_node(noisy)
    assert SECRET not in out
    processes, error = parse_pm2(out)
    assert error is None and processes is not None
    first, second = processes
    assert (first.name, first.status, first.pid, first.restarts, first.port) == (
        "ai-platform-backend-3001", "online", 101, 2, 3001)
    assert first.memory == 31457280 and first.cpu == 1.5
    assert (second.status, second.port, second.pid) == ("waiting restart", 3002, None)
    assert second.crash_looping and not first.crash_looping


def test_pm2_reducer_reports_an_error_line_not_the_text() -> None:
    out = reduce_with_node("[PM2] Spawning PM2 daemon\nconnect EACCES /root/.pm2/rpc.sock\n")
    processes, error = parse_pm2(out)
    assert processes is None
    assert error == "connect EACCES /root/.pm2/rpc.sock"


def test_crash_loop_needs_restarts() -> None:
    fresh = Pm2Process("a", "online", uptime_s=2.0, restarts=0, unstable_restarts=0)
    looping = Pm2Process("a", "online", uptime_s=2.0, restarts=5, unstable_restarts=5)
    backoff = Pm2Process("a", "waiting restart", restarts=3)
    assert not fresh.crash_looping
    assert looping.crash_looping and backoff.crash_looping


def test_certificate_dates_and_errors() -> None:
    cert = parse_certificate("notAfter=Dec 30 10:38:06 2026 GMT\nsubject=CN = a.test\n")
    assert cert.not_after == dt.datetime(2026, 12, 30, 10, 38, 6, tzinfo=dt.UTC)
    assert cert.subject == "CN = a.test"
    now = dt.datetime(2026, 12, 20, 10, 38, 6, tzinfo=dt.UTC)
    assert cert.days_left(now) == pytest.approx(10.0)
    missing = parse_certificate("Could not open file or uri for loading certificate from x\n")
    assert missing.not_after is None and "Could not open" in str(missing.error)


def test_ufw_states() -> None:
    assert parse_ufw("not-installed") == ("not installed", [])
    assert parse_ufw("Status: inactive\n") == ("inactive", [])
    state, rules = parse_ufw("Status: active\n\nTo                         Action      From\n"
                             "--                         ------      ----\n"
                             "22/tcp                     ALLOW       Anywhere\n")
    assert state == "active" and rules == ["22/tcp                     ALLOW       Anywhere"]
    assert parse_ufw("ERROR: You need to be root to run this script")[0].startswith("unknown")


def test_listeners_and_foreign_holders() -> None:
    holders = parse_listeners("3001 101 101,40 /usr/bin/python3 -m uvicorn app:app\n"
                              "3002 555 555,1 python3 -m http.server 3002\n3003 - - \n")
    assert holders[3001] == PortHolder(3001, 101, (101, 40), "/usr/bin/python3 -m uvicorn app:app")
    assert holders[3003].pid is None
    stdout = ("@@pm2_daemon\nyes\n@@pm2\n"
              + json.dumps([{"name": "b-3001", "pid": 40, "status": "online", "port": 3001}])
              + "\n@@listeners\n3001 101 101,40 node server.js\n3002 555 555,1 python3 x\n"
              "@@end\n")
    facts = parse_facts("h", stdout)
    # 101 is a child of PM2's process 40 (npm start -> node): ours.
    assert facts.foreign_holder(3001) is None
    foreign = facts.foreign_holder(3002)
    assert foreign is not None and (foreign.pid, foreign.command) == (555, "python3 x")


def test_parse_facts_is_tolerant_of_garbage() -> None:
    facts = parse_facts("h", "@@pm2\n{not json\n@@release\nnope\n@@disk\n\n@@history\n[\n")
    assert facts.pm2 is None and facts.pm2_error
    assert facts.release is None and facts.disk is None and facts.last_deploy is None
    assert facts.nginx_config_ok is None and not facts.nginx_running


def test_parse_facts_whole() -> None:
    stdout = "\n".join([
        "@@pm2_daemon", "yes", "@@pm2", "[]", "@@pm2_startup", "saved=yes", "unit=enabled",
        "@@nginx_running", "4242", "@@nginx_test",
        'nginx: [emerg] unknown directive "bogus" in /etc/nginx/sites-enabled/x:3',
        "nginx: configuration file /etc/nginx/nginx.conf test failed", "exit=1",
        "@@release", json.dumps({"id": "20261130101010", "created": "2026-11-30T10:10:10Z",
                                 "revision": "abc", "backend_release": "20261130090000"}),
        "@@certificate", "notAfter=Jan  1 00:00:00 2027 GMT", "subject=CN = x",
        "@@disk", "/dev/sda1 1000 400 600 40% /", "@@ufw", "Status: inactive",
        "@@listeners", "@@history", json.dumps({"release": "20261130101010", "result": "ok"}),
        "@@end",
    ])
    facts = parse_facts("h", stdout)
    assert facts.pm2_daemon and facts.pm2 == [] and facts.pm2_saved
    assert facts.pm2_startup == "enabled"
    assert facts.nginx_pid == 4242 and facts.nginx_config_ok is False
    assert 'unknown directive "bogus"' in facts.nginx_config_error
    assert (facts.release, facts.backend_release) == ("20261130101010", "20261130090000")
    assert facts.certificate.not_after == dt.datetime(2027, 1, 1, tzinfo=dt.UTC)
    assert facts.disk is not None and facts.disk.free_bytes == 600 * 1024
    assert facts.disk.free_percent == pytest.approx(60.0)
    assert facts.last_deploy == {"release": "20261130101010", "result": "ok"}


def test_sections_ignore_lookalike_lines() -> None:
    sections = split_sections("@@pm2\n@@notasection\n[]\n@@end\n")
    assert sections["pm2"] == "@@notasection\n[]"


def test_gather_command_runs_under_sh(tmp_path: Path) -> None:
    """The whole command is valid sh and yields every section, even on a bare machine."""
    from adapto_ops.inventory.loader import load_inventory
    from adapto_ops.render.configs import Target
    from tests.e2e_support import REPO

    loaded = load_inventory(REPO / "inventory.yaml")
    env = loaded.environment("sandbox")
    target = Target.of(loaded.inventory.project, "sandbox", env, env.hosts[0])
    command = facts_cmd.gather(target.env.model_copy(update={"paths": target.env.paths.model_copy(
        update={"root": str(tmp_path)})}), "root")
    result = subprocess.run(["sh", "-c", command], capture_output=True, text=True, timeout=60,
                            env={"PATH": "/usr/bin:/bin:/usr/sbin:/sbin",
                                 "PM2_HOME": str(tmp_path / "no-pm2")}, check=False)
    sections = split_sections(result.stdout)
    optional = {"probe", "database", "updates"}
    assert set(facts_cmd.SECTIONS) - optional <= set(sections), result.stdout
    facts = parse_facts("h", result.stdout)
    assert not facts.pm2_daemon and facts.pm2 is None  # jlist must not start a daemon
    assert not (tmp_path / "no-pm2").exists()
    assert facts.disk is not None and facts.disk.total_bytes > 0
