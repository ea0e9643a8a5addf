"""Two network namespaces with a real server for `adapto firewall` (tests and benchmarks).

A "server" namespace and a "client" namespace are joined by a veth pair
(10.231.0.0/30). In the server namespace, inside a mount namespace of its own
whose /etc/ufw and /etc/default/ufw are bind-mounted copies, run a real sshd
(its own host key and authorized key), a real nginx TLS listener on 443 and a
plain HTTP server on the backend port 3001. adapto runs in the client
namespace and reaches the server over SSH, as an operator would. Only these
namespaces are contacted; the machine's own ufw is never touched.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from tests.e2e_support import REPO, Cli, cli_env, run_to_files

UFW = shutil.which("ufw", path="/usr/sbin:/sbin:/usr/bin")
TOOLS = ("ip", "unshare", "nginx", "ssh-keygen", "ssh", "curl", "openssl", "iptables-save")
MISSING = [t for t in TOOLS if not shutil.which(t, path=f"{os.environ['PATH']}:/usr/sbin")]

SERVER_IP, CLIENT_IP = "10.231.0.1", "10.231.0.2"
ENV, LOCK_ENV = "fwtest", "fwlock"
DEPLOY_ENV, LOCK_DEPLOY_ENV = "fwdeploy", "fwdeploylock"
BACKEND_PORT = 3001


@dataclass
class Lab:
    """The two namespaces, the server's private ufw files and the inventory."""

    base: Path
    server_ns: str
    client_ns: str
    inventory: Path
    key: Path
    known_hosts: Path

    def adapto(self, *args: str, timeout: float = 120) -> Cli:
        """The CLI as an operator runs it, from the client namespace."""
        return run_to_files(["ip", "netns", "exec", self.client_ns, sys.executable, "-m",
                             "adapto_ops", *args, "-i", str(self.inventory)],
                            cli_env(), timeout)

    def in_client(self, *argv: str, timeout: float = 20) -> subprocess.CompletedProcess[str]:
        return subprocess.run(["ip", "netns", "exec", self.client_ns, *argv],
                              capture_output=True, text=True, timeout=timeout, check=False)

    def connects(self, port: int, timeout: float = 2.0) -> bool:
        """A new TCP connection from the client to the server's ``port`` is accepted."""
        code = ("import socket,sys\ntry:\n"
                f"    socket.create_connection(({SERVER_IP!r}, {port}), timeout={timeout})\n"
                "except OSError:\n    sys.exit(1)\n")
        return self.in_client(sys.executable, "-c", code).returncode == 0

    def new_ssh(self) -> subprocess.CompletedProcess[str]:
        """A brand-new SSH connection (not adapto's), running one command."""
        return self.in_client(
            "ssh", "-i", str(self.key), "-o", f"UserKnownHostsFile={self.known_hosts}",
            "-o", "StrictHostKeyChecking=yes", "-o", "BatchMode=yes",
            "-o", "ConnectTimeout=5", f"root@{SERVER_IP}", "echo ssh-ok")

    def https(self) -> subprocess.CompletedProcess[str]:
        return self.in_client("curl", "-sk", "--max-time", "5", f"https://{SERVER_IP}/")

    def server_rules(self) -> str:
        """ufw's rule files and the server namespace's iptables, counters left out."""
        files = "".join((self.base / "ufw" / name).read_text()
                        for name in ("user.rules", "user6.rules"))
        tables = subprocess.run(["ip", "netns", "exec", self.server_ns, "iptables-save"],
                                capture_output=True, text=True, check=True).stdout
        kept = [ln for ln in tables.splitlines() if not ln.startswith("#")]
        kept = [ln.split(" [")[0] if ln.startswith(":") else ln for ln in kept]
        return files + "\n".join(kept)


def machine_ufw() -> tuple[str, str, str]:
    """The machine's own ufw: its status line, its rule files' hash, root-ns ufw chains."""
    status = subprocess.run([UFW or "ufw", "status"], capture_output=True, text=True,
                            check=False).stdout.strip()
    digest = hashlib.sha256()
    for name in ("user.rules", "user6.rules", "ufw.conf"):
        digest.update(Path("/etc/ufw", name).read_bytes())
    digest.update(Path("/etc/default/ufw").read_bytes())
    chains = subprocess.run(["iptables-save"], capture_output=True, text=True,
                            check=False).stdout
    return status, digest.hexdigest(), "\n".join(ln for ln in chains.splitlines()
                                                 if "ufw" in ln)


def sh(*argv: str) -> None:
    subprocess.run(argv, check=True, capture_output=True, timeout=30)


def write_inventory(base: Path, key: Path) -> Path:
    data = yaml.safe_load((REPO / "inventory.yaml").read_text(encoding="utf-8"))
    text = yaml.safe_dump(data["environments"]["sandbox"])
    env: dict[str, Any] = yaml.safe_load(text.replace("/var/tmp/adapto-sandbox", str(base)))
    env["hosts"] = [{"name": "fw1", "address": SERVER_IP, "port": 22, "user": "root",
                     "key_file": str(key), "roles": ["web", "backend"]}]
    env["sandbox"] = {"dir": str(base / "sandbox"), "postgres_port": None}
    # What a deploy (--dry-run) would ship: a tiny frontend, the reference backend.
    env["frontend"] = {"source": str(base / "frontend"), "build": None, "dist": "dist"}
    env["backend"]["source"] = str(REPO / "reference" / "backend")
    env["firewall"] = {"manage": True, "allow": ["22/tcp", "80/tcp", "443/tcp"],
                       "deny": [f"{BACKEND_PORT}/tcp"]}
    env["secrets"] = {"names": ["SUPABASE_ANON_KEY"], "file": str(base / "secrets.env")}
    env["health"].pop("probe_token", None)
    locked = yaml.safe_load(yaml.safe_dump(env))
    locked["firewall"]["deny"] = ["22/tcp", f"{BACKEND_PORT}/tcp"]
    locked["firewall"]["allow"] = ["80/tcp", "443/tcp"]
    deploying = yaml.safe_load(yaml.safe_dump(env))
    deploying["firewall"]["apply_on_deploy"] = True
    (base / "frontend" / "dist").mkdir(parents=True, exist_ok=True)
    (base / "frontend" / "dist" / "index.html").write_text("<!doctype html><p>fw</p>\n")
    locked_deploy = yaml.safe_load(yaml.safe_dump(deploying))
    locked_deploy["firewall"].update(allow=locked["firewall"]["allow"],
                                     deny=locked["firewall"]["deny"])
    data["environments"] = {ENV: env, LOCK_ENV: locked, DEPLOY_ENV: deploying,
                            LOCK_DEPLOY_ENV: locked_deploy}
    path = base / "inventory.yaml"
    path.write_text(yaml.safe_dump(data), encoding="utf-8")
    return path


NGINX_CONF = """daemon off;
pid {base}/nginx.pid;
error_log {base}/nginx-error.log;
events {{ worker_connections 64; }}
http {{
  access_log off;
  client_body_temp_path {base}/tmp; proxy_temp_path {base}/tmp;
  fastcgi_temp_path {base}/tmp; uwsgi_temp_path {base}/tmp; scgi_temp_path {base}/tmp;
  server {{
    listen {ip}:443 ssl;
    ssl_certificate {base}/cert.pem; ssl_certificate_key {base}/key.pem;
    location / {{ return 200 "https-ok\\n"; }}
  }}
  server {{ listen {ip}:80; location / {{ return 301 https://$host$request_uri; }} }}
}}
"""


def start_server(base: Path, ns: str, key: Path) -> list[subprocess.Popen[bytes]]:
    """sshd, nginx and the backend port's listener in the server namespace."""
    sh("ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(base / "host_key"))
    sh("ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(key))
    (base / "authorized_keys").write_text(Path(f"{key}.pub").read_text())
    from adapto_ops.render.engine import render_template

    # sshd's config and pid file where a sandbox host keeps them (sandbox.dir/ssh/): the
    # commands check that a sandbox environment's sshd runs before they connect.
    ssh_dir = base / "sandbox" / "ssh"
    ssh_dir.mkdir(parents=True, exist_ok=True)
    (ssh_dir / "sshd_config").write_text(render_template("sandbox/sshd_config.j2", {
        "project": "adapto", "env_name": ENV, "host": "fw1",
        "address": SERVER_IP, "port": 22, "host_key": str(base / "host_key"),
        "pid_file": str(ssh_dir / "sshd.pid"), "authorized_keys": str(base / "authorized_keys"),
        "user": "root", "pm2_home": str(base / "pm2")}))
    sh("openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256",
       "-nodes", "-days", "2", "-subj", "/CN=fw1", "-keyout", str(base / "key.pem"),
       "-out", str(base / "cert.pem"))
    (base / "tmp").mkdir()
    (base / "nginx.conf").write_text(NGINX_CONF.format(base=base, ip=SERVER_IP))
    # ufw's files, private to the server's mount namespace; a fresh server's ufw is off.
    shutil.copytree("/etc/ufw", base / "ufw")
    shutil.copy2("/etc/default/ufw", base / "default-ufw")
    conf = base / "ufw" / "ufw.conf"
    conf.write_text(conf.read_text().replace("ENABLED=yes", "ENABLED=no"))
    mounts = (f"mount --bind {base / 'ufw'} /etc/ufw && "
              f"mount --bind {base / 'default-ufw'} /etc/default/ufw && ")
    out = open(base / "server.log", "ab")  # noqa: SIM115 - lives as long as the servers
    inside = ["ip", "netns", "exec", ns, "unshare", "--mount", "--propagation", "private",
              "sh", "-c"]
    return [
        subprocess.Popen([*inside, mounts + f"exec /usr/sbin/sshd -D -e -f {ssh_dir}/sshd_config"],
                         stdout=out, stderr=out),
        subprocess.Popen(["ip", "netns", "exec", ns, "nginx", "-p", str(base), "-c",
                          str(base / "nginx.conf")], stdout=out, stderr=out),
        subprocess.Popen(["ip", "netns", "exec", ns, sys.executable, "-m", "http.server",
                          str(BACKEND_PORT), "--bind", SERVER_IP, "--directory", str(base / "tmp")],
                         stdout=out, stderr=out),
    ]


def wait_listening(lab: Lab, ports: list[int], deadline_s: float = 15) -> None:
    end = time.monotonic() + deadline_s
    while time.monotonic() < end:
        if all(lab.connects(p, 0.5) for p in ports):
            return
        time.sleep(0.2)
    raise AssertionError(f"server listeners on {ports} did not come up: "
                         f"{(lab.base / 'server.log').read_text()[-2000:]}")


@contextmanager
def firewall_lab(base: Path) -> Iterator[Lab]:
    """The namespaces and servers, torn down (namespaces deleted) whatever happens."""
    tag = str(os.getpid() % 100000)
    server_ns, client_ns = f"adfw-srv-{tag}", f"adfw-cli-{tag}"
    veth_s, veth_c = f"adfws{tag}", f"adfwc{tag}"
    processes: list[subprocess.Popen[bytes]] = []
    try:
        for ns in (server_ns, client_ns):
            sh("ip", "netns", "add", ns)
            sh("ip", "-n", ns, "link", "set", "lo", "up")
        sh("ip", "link", "add", veth_s, "type", "veth", "peer", "name", veth_c)
        sh("ip", "link", "set", veth_s, "netns", server_ns)
        sh("ip", "link", "set", veth_c, "netns", client_ns)
        for ns, dev, ip in ((server_ns, veth_s, SERVER_IP), (client_ns, veth_c, CLIENT_IP)):
            sh("ip", "-n", ns, "addr", "add", f"{ip}/30", "dev", dev)
            sh("ip", "-n", ns, "link", "set", dev, "up")
        key = base / "id_ed25519"
        processes = start_server(base, server_ns, key)
        known_hosts = base / "sandbox" / "ssh" / "known_hosts"
        known_hosts.parent.mkdir(parents=True, exist_ok=True)
        known_hosts.write_text(f"{SERVER_IP} {(base / 'host_key.pub').read_text()}")
        lab = Lab(base, server_ns, client_ns, write_inventory(base, key), key, known_hosts)
        wait_listening(lab, [22, 443, BACKEND_PORT])
        yield lab
    finally:
        for proc in processes:
            proc.terminate()
        for proc in processes:
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
        # Anything still running in the namespaces (sshd's session children) goes too.
        for ns in (server_ns, client_ns):
            pids = subprocess.run(["ip", "netns", "pids", ns], capture_output=True, text=True,
                                  check=False).stdout.split()
            for pid in pids:
                try:
                    os.kill(int(pid), 9)
                except (OSError, ValueError):
                    pass
            subprocess.run(["ip", "netns", "del", ns], capture_output=True, check=False)
