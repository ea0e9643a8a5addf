"""`adapto sandbox up|down|status` against the real tools: sshd, nginx and PM2.

A temporary inventory puts two sandbox hosts on 127.0.0.21 and 127.0.0.22
(SSH port 2299) with every folder under a pytest temporary folder, so the
test never meets a developer's own sandbox (/var/tmp/adapto-sandbox,
127.0.0.2:2222). The sandbox nginx runs its workers as root, so they can read
the 0700 pytest folder. The module's sandbox is brought down (and purged) in
the fixture's finalizer whatever happens.
"""

from __future__ import annotations

import copy
import os
import shutil
import subprocess
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml

from tests.e2e_support import postgres_dir, sandbox_marks

REPO = Path(__file__).resolve().parent.parent
ADDRESSES = ("127.0.0.21", "127.0.0.22")
SSH_PORT = 2299

Cli = Callable[..., subprocess.CompletedProcess[str]]


pytestmark = [
    pytest.mark.timeout(180),
    *sandbox_marks(),
]


@dataclass(frozen=True)
class Sandbox:
    inventory: Path
    base: Path
    hosts: tuple[str, ...]

    def sdir(self, host: str) -> Path:
        return self.base / host


def write_inventory(base: Path) -> Path:
    """The repository's sandbox environment, moved to ``base`` with two hosts."""
    data = yaml.safe_load((REPO / "inventory.yaml").read_text())
    env = copy.deepcopy(data["environments"]["sandbox"])
    host = env["hosts"][0]
    env["hosts"] = [
        {**host, "name": f"sandbox{i}", "address": address, "port": SSH_PORT,
         "key_file": ".adapto/id_ed25519"}
        for i, address in enumerate(ADDRESSES, start=1)
    ]
    text = yaml.safe_dump(env).replace("/var/tmp/adapto-sandbox", str(base))
    env = yaml.safe_load(text)
    env["secrets"]["file"] = ".adapto/secrets.env"
    env["sandbox"]["postgres_dir"] = postgres_dir(ADDRESSES[0], base)
    env["frontend"]["source"] = str(REPO / env["frontend"]["source"])
    env["backend"]["source"] = str(REPO / env["backend"]["source"])
    data["environments"]["sandbox"] = env
    path = base / "inventory.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


@pytest.fixture(scope="module")
def sandbox(tmp_path_factory: pytest.TempPathFactory, sandbox_cli: Cli) -> Iterator[Sandbox]:
    base = tmp_path_factory.mktemp("sbx")  # short: PM2's unix socket path must stay < 108 bytes
    box = Sandbox(write_inventory(base), base, ("sandbox1", "sandbox2"))
    try:
        yield box
    finally:
        result = sandbox_cli("sandbox", "down", "--purge", "-i", str(box.inventory))
        assert result.returncode == 0, result.stderr
        for host in box.hosts:
            assert not box.sdir(host).exists(), f"--purge left {box.sdir(host)}"
        assert box.inventory.exists()  # only the hosts' own folders are removed


def pid_of(path: Path) -> int:
    return int(path.read_text().split()[0])


def alive(pid: int) -> bool:
    """Running and not a zombie (this machine's init may reap late)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[-1].split()[0] not in ("Z", "X")


def daemon_pids(box: Sandbox, host: str) -> tuple[int, int, int]:
    sdir = box.sdir(host)
    return (
        pid_of(sdir / "ssh" / "sshd.pid"),
        pid_of(sdir / "nginx" / "logs" / "nginx.pid"),
        pid_of(sdir / "pm2" / "pm2.pid"),
    )


# --- end to end (in order: up, use, up again, refusals, down) ------------------------


@pytest.mark.e2e
def test_up_starts_every_host(sandbox: Sandbox, sandbox_cli: Cli) -> None:
    result = sandbox_cli("sandbox", "up", "-i", str(sandbox.inventory))
    assert result.returncode == 0, result.stdout + result.stderr
    for host, address in zip(sandbox.hosts, ADDRESSES, strict=True):
        assert host in result.stdout and f"{address}:{SSH_PORT}" in result.stdout
        assert all(alive(pid) for pid in daemon_pids(sandbox, host))
        root = sandbox.sdir(host) / "app"
        assert (root / "releases").is_dir() and (root / "shared" / "logs").is_dir()
        assert root.stat().st_mode & 0o777 == 0o755
    secrets = sandbox.base / ".adapto" / "secrets.env"
    assert secrets.stat().st_mode & 0o777 == 0o600
    value = secrets.read_text().split("SUPABASE_ANON_KEY=", 1)[1].split()[0]
    assert len(value) >= 24 and value not in result.stdout + result.stderr


@pytest.mark.e2e
def test_ssh_with_generated_key_and_pinned_host_key(sandbox: Sandbox) -> None:
    paramiko = pytest.importorskip("paramiko")
    from adapto_ops.inventory.loader import load_inventory
    from adapto_ops.sandbox import client_key_path, known_hosts_path

    loaded = load_inventory(sandbox.inventory)
    env = loaded.environment("sandbox")
    for host in env.hosts:
        known_hosts = known_hosts_path(env, host)
        key = client_key_path(loaded, host)
        assert known_hosts == sandbox.sdir(host.name) / "ssh" / "known_hosts"
        assert key == sandbox.base / ".adapto" / "id_ed25519"
        client = paramiko.SSHClient()
        client.load_host_keys(str(known_hosts))
        client.set_missing_host_key_policy(paramiko.RejectPolicy())  # no trust on first use
        client.connect(host.address, port=host.port, username=host.user, key_filename=str(key),
                       look_for_keys=False, allow_agent=False, timeout=10)
        try:
            _, stdout, _ = client.exec_command("echo $PM2_HOME", timeout=20)
            assert stdout.read().decode().strip() == str(sandbox.sdir(host.name) / "pm2")
            with client.open_sftp() as sftp:  # deploy uploads with SFTP
                assert sftp.stat(str(sandbox.sdir(host.name) / "app" / "releases"))
        finally:
            client.close()
    # The other host's known_hosts does not vouch for this one: the key is really checked.
    client = paramiko.SSHClient()
    client.load_host_keys(str(known_hosts_path(env, env.hosts[0])))
    client.set_missing_host_key_policy(paramiko.RejectPolicy())
    with pytest.raises(paramiko.SSHException):
        client.connect(ADDRESSES[1], port=SSH_PORT, username="root", key_filename=str(key),
                       look_for_keys=False, allow_agent=False, timeout=10)
    client.close()


@pytest.mark.e2e
def test_nginx_runs_with_its_own_prefix(sandbox: Sandbox) -> None:
    nginx = shutil.which("nginx", path=f"{os.environ['PATH']}:/usr/sbin")
    for host in sandbox.hosts:
        prefix = sandbox.sdir(host) / "nginx"
        assert alive(pid_of(prefix / "logs" / "nginx.pid"))
        check = subprocess.run(
            [str(nginx), "-t", "-p", str(prefix), "-c", str(prefix / "conf" / "nginx.conf"),
             "-e", str(prefix / "logs" / "error.log")],
            capture_output=True, text=True, timeout=30, check=False,
        )
        assert check.returncode == 0, check.stderr
        assert (sandbox.sdir(host) / "tls" / "cert.pem").is_file()


@pytest.mark.e2e
def test_status_reports_up(sandbox: Sandbox, sandbox_cli: Cli) -> None:
    result = sandbox_cli("sandbox", "status", "-i", str(sandbox.inventory))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "DOWN" not in result.stdout


@pytest.mark.e2e
def test_second_up_is_idempotent(sandbox: Sandbox, sandbox_cli: Cli) -> None:
    before = {host: daemon_pids(sandbox, host) for host in sandbox.hosts}
    result = sandbox_cli("sandbox", "up", "-i", str(sandbox.inventory))
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.count("already running") == len(sandbox.hosts)
    assert {host: daemon_pids(sandbox, host) for host in sandbox.hosts} == before


@pytest.mark.e2e
def test_hosts_option_acts_on_the_first_n(sandbox: Sandbox, sandbox_cli: Cli) -> None:
    result = sandbox_cli("sandbox", "status", "--hosts", "1", "-i", str(sandbox.inventory))
    assert result.returncode == 0
    assert "sandbox1" in result.stdout and "sandbox2" not in result.stdout


@pytest.mark.e2e
def test_environment_without_sandbox_section_is_refused(
    sandbox: Sandbox, sandbox_cli: Cli
) -> None:
    result = sandbox_cli("sandbox", "up", "-e", "production", "-i", str(sandbox.inventory))
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "sandbox" in lines[0] and "production" in lines[0]


@pytest.mark.e2e
def test_more_hosts_than_there_are_is_refused_but_by_up(sandbox: Sandbox,
                                                         sandbox_cli: Cli) -> None:
    # Only `up` derives hosts (tests/test_init_sandbox_e2e.py); status and down refuse.
    result = sandbox_cli("sandbox", "status", "--hosts", "5", "-i", str(sandbox.inventory))
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "has 2 host(s)" in lines[0], lines
    assert "`adapto sandbox up -e sandbox --hosts 5` derives the others" in lines[0]


@pytest.mark.e2e
def test_down_stops_everything(sandbox: Sandbox, sandbox_cli: Cli) -> None:
    pids = [pid for host in sandbox.hosts for pid in daemon_pids(sandbox, host)]
    result = sandbox_cli("sandbox", "down", "-i", str(sandbox.inventory))
    assert result.returncode == 0, result.stdout + result.stderr
    assert not any(alive(pid) for pid in pids)
    assert (sandbox.sdir("sandbox1") / "ssh" / "known_hosts").is_file()  # files are kept
    status = sandbox_cli("sandbox", "status", "-i", str(sandbox.inventory))
    assert status.returncode == 1
    assert "DOWN" in status.stdout


# --- pure checks ---------------------------------------------------------------------


def test_non_loopback_and_outside_paths_are_refused(tmp_path: Path) -> None:
    from adapto_ops.errors import InventoryError
    from adapto_ops.inventory.loader import parse_inventory
    from adapto_ops.sandbox import sandbox_hosts

    data = yaml.safe_load((REPO / "inventory.yaml").read_text())
    env = data["environments"]["sandbox"]
    env["hosts"][0]["address"] = "10.0.0.5"
    env["nginx"]["tls"]["certificate"] = "/etc/ssl/certs/sandbox.pem"
    loaded = parse_inventory(yaml.safe_dump(data), tmp_path / "inventory.yaml")
    with pytest.raises(InventoryError) as info:
        sandbox_hosts(loaded, "sandbox")
    text = "\n".join(info.value.lines())
    assert "not in 127.0.0.0/8" in text and "/etc/ssl/certs/sandbox.pem" in text


def test_purge_only_touches_marked_folders(tmp_path: Path) -> None:
    from adapto_ops.inventory.loader import parse_inventory
    from adapto_ops.sandbox.hosts import MARKER, purge_targets, sandbox_host

    inventory = write_inventory(tmp_path)
    loaded = parse_inventory(inventory.read_text(), inventory)
    sh = sandbox_host(loaded, "sandbox", loaded.environment("sandbox").hosts[0])
    sh.sdir.mkdir(parents=True)
    assert purge_targets(sh) == []  # not made by `up`: never deleted
    (sh.sdir / MARKER).write_text("x")
    assert purge_targets(sh) == [sh.sdir]  # prefix and root live inside it


def test_missing_tool_fails_before_changing_anything(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from adapto_ops.inventory.loader import load_inventory
    from adapto_ops.sandbox import lifecycle as sandbox
    from adapto_ops.sandbox import procs

    inventory = write_inventory(tmp_path)
    monkeypatch.setattr(procs, "SSHD", str(tmp_path / "no-sshd"))
    with pytest.raises(procs.ToolMissing, match="sshd not found: apt-get install openssh-server"):
        sandbox.up(load_inventory(inventory), "sandbox")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["inventory.yaml"]
