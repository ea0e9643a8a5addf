"""What a sandbox host is: its environment resolved for it, its folders, and the checks.

A sandbox host is one loopback address of an environment with a ``sandbox:``
section. Everything it runs (sshd, nginx, the PM2 daemon, PostgreSQL) keeps its
state in folders the inventory names for that host; this module computes those
paths and checks them. It changes nothing.
"""

from __future__ import annotations

import ipaddress
import os
from dataclasses import dataclass
from pathlib import Path

from adapto_ops.inventory.hosts import for_host
from adapto_ops.inventory.loader import LoadedInventory
from adapto_ops.inventory.model import Environment, Host

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
