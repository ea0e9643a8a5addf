"""Helpers of `adapto sandbox` that change nothing: paths, checks, config text, look-ups.

A sandbox host is one loopback address of an environment with a ``sandbox:``
section. Everything it runs (sshd, nginx, the PM2 daemon) keeps its state in
folders the inventory names for that host; this module computes those paths,
checks them, renders configuration text and reads pid files and /proc to
tell whether the daemons run. Everything that writes, starts or stops is in
:mod:`adapto_ops.sandbox.lifecycle`.
"""

from __future__ import annotations

import ipaddress
import os
import pwd
import shutil
import socket
from dataclasses import dataclass
from pathlib import Path

from adapto_ops.errors import AdaptoError, OperationFailed
from adapto_ops.inventory.hosts import for_host
from adapto_ops.inventory.loader import LoadedInventory
from adapto_ops.inventory.model import Environment, Host
from adapto_ops.render.engine import render_template

# The PATH sshd gives a root session (OpenSSH's _PATH_STDPATH with sbin for
# root); the PM2 daemon is started with it so its apps see what a deploy sees.
SESSION_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
# Left in every folder `up` owns; `down --purge` deletes only folders holding it.
MARKER = ".adapto-sandbox"
# Linux limits a unix socket path to 107 bytes; PM2 puts rpc.sock in PM2_HOME.
SUN_PATH_MAX = 107
# Never purged, whatever the inventory says.
PROTECTED = {
    "/", "/bin", "/boot", "/dev", "/etc", "/home", "/lib", "/lib64", "/opt", "/proc",
    "/root", "/run", "/sbin", "/srv", "/sys", "/tmp", "/usr", "/var", "/var/lib",
    "/var/log", "/var/tmp", "/var/www", "/work",
}
SSHD = "/usr/sbin/sshd"  # sshd re-executes itself, so it must be started by absolute path
# tool -> how to install it, for the one-line error when it is missing
INSTALL = {
    "sshd": "apt-get install openssh-server",
    "ssh-keygen": "apt-get install openssh-client",
    "nginx": "apt-get install nginx",
    "node": "apt-get install nodejs npm",
    "pm2": "npm install -g pm2@5",
}


class ToolMissing(AdaptoError):
    """A program the sandbox runs is not installed (exit code 2)."""


@dataclass(frozen=True)
class SandboxHost:
    """One sandbox host: its environment resolved for it, and where its files live."""

    project: str
    env_name: str
    env: Environment  # placeholders ({host}, {address}) already filled in
    host: Host
    client_key: Path  # private key the deploy uses; its .pub goes to authorized_keys

    @property
    def name(self) -> str:
        return self.host.name

    @property
    def sdir(self) -> Path:
        assert self.env.sandbox is not None
        return Path(self.env.sandbox.dir)

    @property
    def ssh_dir(self) -> Path:
        return self.sdir / "ssh"

    @property
    def host_key(self) -> Path:
        return self.ssh_dir / "ssh_host_ed25519_key"

    @property
    def sshd_config(self) -> Path:
        return self.ssh_dir / "sshd_config"

    @property
    def sshd_pid(self) -> Path:
        return self.ssh_dir / "sshd.pid"

    @property
    def sshd_log(self) -> Path:
        return self.ssh_dir / "sshd.log"

    @property
    def authorized_keys(self) -> Path:
        return self.ssh_dir / "authorized_keys"

    @property
    def known_hosts(self) -> Path:
        return self.ssh_dir / "known_hosts"

    @property
    def pm2_home(self) -> Path:
        return self.sdir / "pm2"

    @property
    def pm2_pid(self) -> Path:
        return self.pm2_home / "pm2.pid"

    @property
    def prefix(self) -> Path:
        assert self.env.nginx.prefix is not None
        return Path(self.env.nginx.prefix)

    @property
    def nginx_conf(self) -> Path:
        return Path(self.env.nginx.main_config_path)

    @property
    def nginx_pid(self) -> Path:
        return self.prefix / "logs" / "nginx.pid"

    @property
    def nginx_error_log(self) -> Path:
        return self.prefix / "logs" / "error.log"

    @property
    def sites_enabled(self) -> Path:
        return self.prefix / "conf" / "sites-enabled"

    @property
    def root(self) -> Path:
        return Path(self.env.paths.root)

    @property
    def endpoint(self) -> str:
        return f"{self.host.address}:{self.host.port}"

    def owned_dirs(self) -> list[Path]:
        """The folders this host owns: sandbox dir, nginx prefix, root (outermost first)."""
        dirs: list[Path] = []
        for path in sorted({self.sdir, self.prefix, self.root}, key=lambda p: len(p.parts)):
            if not any(path == d or d in path.parents for d in dirs):
                dirs.append(path)
        return dirs


def sandbox_host(loaded: LoadedInventory, env_name: str, host: Host) -> SandboxHost:
    """``host`` of ``env_name`` as a sandbox host (the environment must have ``sandbox:``)."""
    env = for_host(loaded.environment(env_name), host)
    key = loaded.resolve(host.key_file) if host.key_file else Path()
    return SandboxHost(loaded.inventory.project, env_name, env, host, key)


def is_loopback(address: str) -> bool:
    """True for an IPv4 address in 127.0.0.0/8 (names and IPv6 are refused)."""
    try:
        return ipaddress.ip_address(address) in ipaddress.ip_network("127.0.0.0/8")
    except ValueError:
        return False


def _plain(path: str) -> bool:
    """No `..`, `.` or `//`: lexical checks on the path then hold for the real file too."""
    return os.path.normpath(path) == path


def problems(sh: SandboxHost) -> list[str]:
    """Why this host cannot be a sandbox host; empty when it can."""
    name, env = sh.name, sh.env
    found: list[str] = []
    if not is_loopback(sh.host.address):
        found.append(
            f"host {name}: address {sh.host.address} is not in 127.0.0.0/8; "
            "the sandbox only ever uses loopback addresses"
        )
    if not sh.host.key_file:
        found.append(f"host {name}: no key_file; add e.g. key_file: .adapto/sandbox/id_ed25519")
    if env.nginx.control != "signal" or not env.nginx.prefix:
        found.append(f"host {name}: nginx.control must be 'signal' with nginx.prefix set")
        return found
    for label, path in (("sandbox.dir", sh.sdir), ("nginx.prefix", sh.prefix),
                        ("paths.root", sh.root)):
        if any(c.isspace() for c in str(path)) or not _plain(str(path)) or str(path) in PROTECTED:
            found.append(f"host {name}: {label} {path} must be a dedicated folder without spaces")
    nginx = env.nginx
    owned = sh.owned_dirs()
    for label, value in (
        ("nginx.main_config", nginx.main_config_path), ("tls.certificate", nginx.certificate_path),
        ("tls.certificate_key", nginx.certificate_key_path),
        ("tls.acme_webroot", nginx.tls.acme_webroot), ("nginx.access_log", nginx.access_log),
        ("nginx.error_log", nginx.error_log),
    ):
        # `up` creates or writes these; it must never touch a file outside this host's folders.
        if not _plain(value) or not any(d in Path(value).parents for d in owned):
            found.append(f"host {name}: {label} {value} is outside the host's sandbox folders "
                         f"({', '.join(map(str, owned))})")
    enabled = Path(nginx.site_enabled_path)
    if enabled.parent != sh.sites_enabled:
        found.append(
            f"host {name}: nginx.site_enabled must be in {sh.sites_enabled}/ "
            "(the only folder the sandbox nginx includes)"
        )
    if len(str(sh.pm2_home / "rpc.sock")) > SUN_PATH_MAX:
        found.append(
            f"host {name}: {sh.pm2_home}/rpc.sock is longer than {SUN_PATH_MAX} bytes, "
            "too long for a unix socket; use a shorter sandbox.dir"
        )
    return found


def known_hosts_line(address: str, port: int, public_key: str) -> str:
    """A known_hosts line; OpenSSH and Paramiko write non-22 ports as [address]:port."""
    where = address if port == 22 else f"[{address}]:{port}"
    key_type, key_data = public_key.split()[:2]
    return f"{where} {key_type} {key_data}\n"


def render_sshd_config(sh: SandboxHost) -> str:
    return render_template(
        "sandbox/sshd_config.j2",
        {
            "project": sh.project, "env_name": sh.env_name, "host": sh.name,
            "address": sh.host.address, "port": sh.host.port, "user": sh.host.user,
            "host_key": sh.host_key, "pid_file": sh.sshd_pid,
            "authorized_keys": sh.authorized_keys, "pm2_home": sh.pm2_home,
        },
    )


def render_nginx_conf(sh: SandboxHost) -> str:
    return render_template(
        "sandbox/nginx.conf.j2",
        {
            "project": sh.project, "env_name": sh.env_name, "host": sh.name,
            "prefix": sh.prefix, "main_config": sh.nginx_conf,
            "sites_enabled": sh.sites_enabled,
        },
    )


def purge_targets(sh: SandboxHost) -> list[Path]:
    """The folders `down --purge` may delete, after re-checking each is really ours.

    Only the host's own sandbox dir, nginx prefix and root qualify, and only if
    each is an absolute, symlink-free path at least two levels deep, not a
    system folder, and carries the marker `up` left in it.
    """
    safe: list[Path] = []
    for path in sh.owned_dirs():
        if not path.is_dir():
            continue
        real = Path(path).resolve()
        if (
            real != path
            or len(path.parts) < 3
            or str(path) in PROTECTED
            or not (path / MARKER).is_file()
        ):
            continue
        safe.append(path)
    return safe


# --- read-only look-ups: is it running? ---------------------------------------------


def live_pid(pid_file: Path, needle: str) -> int | None:
    """The pid in ``pid_file`` if that process runs and ``needle`` is in its command line
    or its environment (one NAME=value per line).

    This guards against a stale pid file naming a recycled pid. The PM2 daemon
    is found by its environment: node truncates its process title to the
    original argv length, cutting PM2_HOME off. Zombies count as dead (our
    init may reap them late).
    """
    try:
        pid = int(pid_file.read_text().split()[0])
        stat = Path(f"/proc/{pid}/stat").read_text()
        seen = b"\n".join(
            Path(f"/proc/{pid}/{name}").read_bytes().replace(b"\0", b"\n")
            for name in ("cmdline", "environ")
        ).decode(errors="replace")
    except (OSError, ValueError, IndexError):
        return None
    if stat.rsplit(")", 1)[-1].split()[0] in ("Z", "X"):
        return None
    return pid if needle in seen else None


def sshd_pid(sh: SandboxHost) -> int | None:
    """The pid of this host's sshd listener, if it runs."""
    return live_pid(sh.sshd_pid, f" -f {sh.sshd_config} ")


def nginx_pid(sh: SandboxHost) -> int | None:
    """The pid of this host's nginx master, if it runs."""
    return live_pid(sh.nginx_pid, f" -p {sh.prefix} ")


def pm2_pid(sh: SandboxHost) -> int | None:
    """The pid of this host's PM2 daemon, if it runs."""
    return live_pid(sh.pm2_pid, f"PM2_HOME={sh.pm2_home}\n")


def tcp_open(address: str, port: int, timeout: float = 1.0) -> bool:
    """True when something accepts a TCP connection on address:port."""
    try:
        with socket.create_connection((address, port), timeout=timeout):
            return True
    except OSError:
        return False


@dataclass(frozen=True)
class HostStatus:
    """Which parts of one sandbox host run (`adapto sandbox status`)."""

    sh: SandboxHost
    sshd: bool
    nginx: bool
    pm2: bool
    root: bool

    @property
    def ok(self) -> bool:
        return self.sshd and self.nginx and self.pm2 and self.root


def host_status(sh: SandboxHost) -> HostStatus:
    """Look at the pid files, /proc and the SSH port; change nothing."""
    return HostStatus(
        sh,
        sshd=bool(sshd_pid(sh)) and tcp_open(sh.host.address, sh.host.port),
        nginx=bool(nginx_pid(sh)),
        pm2=bool(pm2_pid(sh)),
        root=sh.root.is_dir(),
    )


def find_tool(name: str, binary: str | None = None) -> str:
    """Absolute path of a tool, looked up on PATH and the session PATH; else ToolMissing."""
    if name == "sshd":
        found = SSHD if os.access(SSHD, os.X_OK) else None
    else:
        search = f"{os.environ.get('PATH', '')}:{SESSION_PATH}"
        found = shutil.which(binary or name, path=search)
    if not found:
        raise ToolMissing(f"{name} not found: {INSTALL[name]}")
    return found


def check_bindable(sh: SandboxHost) -> None:
    """Fail early when sshd could not listen on host.address:host.port."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((sh.host.address, sh.host.port))
        except OSError as exc:
            raise OperationFailed(
                f"{sh.name}: cannot listen on {sh.endpoint}: {exc.strerror}"
            ) from None


def pm2_env(sh: SandboxHost, node: str) -> dict[str, str]:
    """The environment of the PM2 daemon: what an SSH session on the host would have."""
    return {
        "PATH": f"{Path(node).parent}:{SESSION_PATH}",
        "HOME": pwd.getpwuid(os.getuid()).pw_dir,
        "LANG": "C.UTF-8",
        "PM2_HOME": str(sh.pm2_home),
    }


def nginx_argv(sh: SandboxHost, nginx: str, *extra: str) -> list[str]:
    """nginx with this host's prefix and config; -e keeps start-up errors in the prefix."""
    return [nginx, "-p", str(sh.prefix), "-c", str(sh.nginx_conf), "-e", str(sh.nginx_error_log),
            *extra]
