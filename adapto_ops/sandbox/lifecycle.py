"""`adapto sandbox up|down|status`: a local rehearsal server per host, on loopback.

Each host of an environment with a ``sandbox:`` section becomes a real OpenSSH
server on its loopback address, an nginx with its own prefix and a PM2 daemon
with its own PM2_HOME, so `adapto deploy` can be rehearsed end to end over SSH
on one machine. Paths and config text come from :mod:`adapto_ops.sandbox.files`;
this module does the local I/O. Every step checks before it acts, so `up` on a
running sandbox only confirms it.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import os
import secrets
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from adapto_ops.errors import AdaptoError, InventoryError, OperationFailed
from adapto_ops.inventory.hosts import for_host
from adapto_ops.inventory.loader import LoadedInventory
from adapto_ops.inventory.model import Environment, Host
from adapto_ops.inventory.secrets import parse_dotenv
from adapto_ops.sandbox import postgres as spg
from adapto_ops.sandbox.files import (
    INSTALL,
    MARKER,
    SESSION_PATH,
    SSHD,
    SandboxHost,
    ToolMissing,
    check_bindable,
    find_tool,
    known_hosts_line,
    nginx_argv,
    nginx_pid,
    pm2_env,
    pm2_pid,
    problems,
    purge_targets,
    render_nginx_conf,
    render_sshd_config,
    sandbox_host,
    sshd_pid,
    tcp_open,
)
from adapto_ops.tls import issued_by, write_ca, write_signed

CERT_MIN_DAYS = 7
STOP_GRACE_S = 10.0


# --- public look-ups (the deploy transport uses these) --------------------------


def known_hosts_path(env: Environment, host: Host) -> Path | None:
    """The known_hosts file pinning ``host``'s sandbox host key; None outside a sandbox.

    ``env`` may be raw or already resolved for ``host``: placeholders are filled in here.
    """
    if env.sandbox is None:
        return None
    return Path(for_host(env, host).sandbox.dir) / "ssh" / "known_hosts"  # type: ignore[union-attr]


def client_key_path(loaded: LoadedInventory, host: Host) -> Path | None:
    """``host.key_file`` resolved against the inventory's folder (None when unset)."""
    return loaded.resolve(host.key_file) if host.key_file else None


def sandbox_hosts(
    loaded: LoadedInventory, env_name: str, count: int | None = None
) -> list[SandboxHost]:
    """The first ``count`` (default: all) hosts of a sandbox environment, checked."""
    env = loaded.environment(env_name)
    if env.sandbox is None:
        raise InventoryError(
            f"environment {env_name!r} has no `sandbox:` section; `adapto sandbox` only "
            f"runs environments made for local rehearsal (e.g. -e sandbox)"
        )
    if count is not None and count > len(env.hosts):
        raise InventoryError(
            f"--hosts {count}: environment {env_name!r} declares {len(env.hosts)} host(s); "
            f"add {count - len(env.hosts)} more to it in {loaded.path}"
        )
    hosts = [sandbox_host(loaded, env_name, h) for h in env.hosts[:count]]
    found = [p for sh in hosts for p in problems(sh)]
    if found:
        raise InventoryError(found[0], details=found)
    return hosts


# --- small process helpers --------------------------------------------------------


def _run(
    argv: list[str], env: dict[str, str] | None = None, timeout: float = 60
) -> tuple[int, str]:
    # Output goes to a file, not a pipe: daemons started here would inherit a
    # pipe and keep the reader waiting for EOF long after the command returned.
    with tempfile.TemporaryFile() as out:
        proc = subprocess.run(
            argv, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
            env=env, timeout=timeout, check=False,
        )
        out.seek(0)
        return proc.returncode, out.read().decode(errors="replace")


def _must(host: str, argv: list[str], env: dict[str, str] | None = None) -> str:
    code, output = _run(argv, env)
    if code != 0:
        lines = [ln.strip() for ln in output.splitlines() if ln.strip()]
        raise OperationFailed(
            f"{host}: `{' '.join(argv)}` failed: {lines[-1] if lines else f'exit {code}'}"
        )
    return output


def _wait(done: Callable[[], object], timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if done():
            return True
        time.sleep(0.05)
    return bool(done())


def _write(path: Path, text: str, mode: int = 0o644) -> bool:
    """Write ``text`` unless the file already says it; True when it changed."""
    if path.is_file() and path.read_text(encoding="utf-8") == text:
        return False
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        handle.write(text)
    os.chmod(tmp, mode)  # the umask may have narrowed it
    os.replace(tmp, path)
    return True


def _stop(sh: SandboxHost, alive: Callable[[SandboxHost], int | None], grace: float) -> None:
    """Wait ``grace`` seconds for the process to exit, then SIGTERM it, then SIGKILL it."""
    for sig in (None, signal.SIGTERM, signal.SIGKILL):
        pid = alive(sh)
        if pid is None:
            return
        if sig is not None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, sig)
        _wait(lambda: not alive(sh), grace if sig is None else 3.0)


# --- up ------------------------------------------------------------------------------


def ensure_client_key(path: Path, keygen: str) -> str:
    """Make the deploy's key pair if missing; return the public key line."""
    pub = path.with_name(path.name + ".pub")
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        _must("local", [keygen, "-q", "-t", "ed25519", "-N", "", "-C", "adapto-sandbox",
                        "-f", str(path)])
    if not pub.exists():
        pub.write_text(_must("local", [keygen, "-y", "-f", str(path)]))
    return pub.read_text().strip()


def ensure_secrets(path: Path, names: list[str]) -> list[str]:
    """Give every secret without a value a random one in ``path`` (0600); return their names."""
    text = path.read_text(encoding="utf-8") if path.is_file() else ""
    values = parse_dotenv(text)
    missing = [n for n in names if not values.get(n)]
    if missing:
        if text and not text.endswith("\n"):
            text += "\n"
        text += "".join(f"{n}={secrets.token_urlsafe(24)}\n" for n in missing)
        _write(path, text, 0o600)
    return missing


def _ensure_dirs(sh: SandboxHost) -> None:
    nginx = sh.env.nginx
    for path, mode in (
        (sh.sdir, 0o755), (sh.ssh_dir, 0o700), (sh.pm2_home, 0o700),
        (sh.prefix / "conf" / "sites-available", 0o755), (sh.sites_enabled, 0o755),
        (sh.prefix / "logs", 0o755), (Path(nginx.tls.acme_webroot), 0o755),
        (Path(nginx.access_log).parent, 0o755), (Path(nginx.error_log).parent, 0o755),
        (sh.root / "releases", 0o755), (sh.root / "shared" / "logs", 0o755),
    ):
        path.mkdir(parents=True, exist_ok=True, mode=mode)
    for path in (sh.sdir, sh.prefix, sh.root):
        path.chmod(0o755)  # the root must be 755 whatever the umask
        marker = path / MARKER
        if not marker.exists():
            marker.write_text(f"made by `adapto sandbox up` for {sh.env_name}/{sh.name}\n")


def ca_paths(sh: SandboxHost) -> tuple[Path, Path]:
    """The sandbox CA's certificate (``health.ca_file`` when set) and its key beside it."""
    ca = Path(sh.env.health.ca_file) if sh.env.health.ca_file else sh.sdir / "tls" / "ca.pem"
    return ca, ca.with_suffix(".key")


def _ensure_cert(sh: SandboxHost) -> bool:
    """The site's pair signed by the sandbox CA, renewed when missing, near expiry, not for
    the server names, or not issued by that CA (an older sandbox's self-signed leaf);
    True if new."""
    from cryptography import x509

    cert = Path(sh.env.nginx.certificate_path)
    key = Path(sh.env.nginx.certificate_key_path)
    ca, ca_key = ca_paths(sh)
    if not (ca.is_file() and ca_key.is_file()):
        write_ca(f"adapto sandbox CA {sh.env_name}/{sh.name}", ca, ca_key)
    elif cert.is_file() and key.is_file() and issued_by(cert, ca):
        try:
            leaf = x509.load_pem_x509_certificate(cert.read_bytes())
            names = leaf.extensions.get_extension_for_class(x509.SubjectAlternativeName) \
                .value.get_values_for_type(x509.DNSName)
            fresh = leaf.not_valid_after_utc - dt.datetime.now(dt.UTC) \
                > dt.timedelta(days=CERT_MIN_DAYS)
            if fresh and set(sh.env.nginx.server_names) <= set(names):
                return False
        except (ValueError, x509.ExtensionNotFound):
            pass  # unreadable or nameless: replace it
    write_signed([*sh.env.nginx.server_names, sh.host.address], cert, key, ca, ca_key, days=30)
    return True


def _up_sshd(sh: SandboxHost, keygen: str, client_pub: str) -> bool:
    new_key = not sh.host_key.exists()
    if new_key:
        _must(sh.name, [keygen, "-q", "-t", "ed25519", "-N", "", "-C", f"adapto-sandbox-{sh.name}",
                        "-f", str(sh.host_key)])
    host_pub = sh.host_key.with_name(sh.host_key.name + ".pub").read_text()
    _write(sh.authorized_keys, client_pub + "\n", 0o600)
    _write(sh.known_hosts, known_hosts_line(sh.host.address, sh.host.port, host_pub))
    changed = _write(sh.sshd_config, render_sshd_config(sh), 0o600) or new_key
    pid = sshd_pid(sh)
    if pid and not changed:
        return False
    Path("/run/sshd").mkdir(mode=0o755, parents=True, exist_ok=True)  # privilege separation
    _must(sh.name, [SSHD, "-t", "-f", str(sh.sshd_config)])  # a bad config must not stop it
    if pid:
        os.kill(pid, signal.SIGHUP)  # sshd re-executes itself with the new config
        return False
    _must(sh.name, [SSHD, "-f", str(sh.sshd_config), "-E", str(sh.sshd_log)])
    # sshd daemonizes before it binds, so success shows only as an open port.
    if not _wait(lambda: sshd_pid(sh) and tcp_open(sh.host.address, sh.host.port, 0.2), 10):
        raise OperationFailed(f"{sh.name}: sshd did not start listening on {sh.endpoint}; "
                              f"see {sh.sshd_log}")
    return True


def _up_nginx(sh: SandboxHost, nginx: str) -> bool:
    renewed = _ensure_cert(sh)
    changed = _write(sh.nginx_conf, render_nginx_conf(sh))
    pid = nginx_pid(sh)
    if pid and not (renewed or changed):
        return False  # running as configured; a site the deploy installed is its business
    _must(sh.name, nginx_argv(sh, nginx, "-t", "-q"))
    if pid:
        _must(sh.name, nginx_argv(sh, nginx, "-s", "reload"))
        return False
    _must(sh.name, nginx_argv(sh, nginx))
    if not _wait(lambda: nginx_pid(sh), 10):
        raise OperationFailed(f"{sh.name}: nginx did not start; see {sh.nginx_error_log}")
    return True


def _up_pm2(sh: SandboxHost, pm2: str, node: str) -> bool:
    """Start the PM2 daemon as a server's boot does, saved processes included.

    On a production host PM2's systemd unit (`pm2 startup`) runs `pm2 resurrect`
    at boot; `up` after `down` is the sandbox's reboot, so it does the same with
    the list the last deploy saved (dump.pm2), when there is one.
    """
    if pm2_pid(sh):
        return False
    env = pm2_env(sh, node)
    _must(sh.name, [pm2, "ping"], env)  # starts the daemon, answers once it runs
    if not _wait(lambda: pm2_pid(sh), 10):
        raise OperationFailed(f"{sh.name}: the PM2 daemon did not start; see {sh.pm2_home}/pm2.log")
    if (sh.pm2_home / "dump.pm2").is_file():
        _must(sh.name, [pm2, "resurrect"], env)
    return True


def up_host(sh: SandboxHost, tools: dict[str, str], client_pub: str,
            secrets_file: Path | None = None) -> str:
    """Bring one host up; return what happened, for the table's state column."""
    _ensure_dirs(sh)
    with ThreadPoolExecutor(max_workers=1) as pool:  # initdb takes seconds: meanwhile sshd, nginx
        database = pool.submit(lambda: spg.holds_database(sh) and spg.up_database(sh, secrets_file))
        sshd, nginx = _up_sshd(sh, tools["ssh-keygen"], client_pub), _up_nginx(sh, tools["nginx"])
        # Before PM2: its daemon resurrects apps that connect to the database.
        did = {"postgres": database.result(), "sshd": sshd, "nginx": nginx,
               "pm2": _up_pm2(sh, tools["pm2"], tools["node"])}
    started = [name for name, yes in did.items() if yes]
    return f"up (started {', '.join(started)})" if started else "up (already running)"


def up(
    loaded: LoadedInventory, env_name: str, count: int | None = None,
    notes: list[str] | None = None,
) -> list[tuple[SandboxHost, str]]:
    """Check everything first, then bring the hosts up in parallel.

    ``notes`` receives one line per generated secrets file (names only, never values).
    """
    hosts = sandbox_hosts(loaded, env_name, count)
    nginx_binary = hosts[0].env.nginx.binary
    tools = {name: find_tool(name, nginx_binary if name == "nginx" else None) for name in INSTALL}
    for sh in hosts:
        if not sshd_pid(sh):
            check_bindable(sh)
    pubs = {sh.client_key: ensure_client_key(sh.client_key, tools["ssh-keygen"]) for sh in hosts}
    secrets_files = {
        loaded.resolve(sh.env.secrets.file): sh.env.secrets.names
        for sh in hosts if sh.env.secrets.file
    }
    for path, names in secrets_files.items():
        # The database URLs are written by the cluster's host below, never made up.
        added = ensure_secrets(path, [n for n in names if n not in spg.DATABASE_SECRETS])
        if added and notes is not None:
            notes.append(f"generated random {', '.join(added)} in {path}")
    return _each(hosts, lambda sh: up_host(sh, tools, pubs[sh.client_key], loaded.resolve(
        sh.env.secrets.file) if sh.env.secrets.file else None))


def _each(
    hosts: list[SandboxHost], action: Callable[[SandboxHost], str]
) -> list[tuple[SandboxHost, str]]:
    """Run ``action`` on every host at once; report every host that failed, not just one."""
    with ThreadPoolExecutor(max_workers=len(hosts)) as pool:
        futures = [(sh, pool.submit(action, sh)) for sh in hosts]
    results, failed = [], []
    for sh, future in futures:
        try:
            results.append((sh, future.result()))
        except AdaptoError as exc:
            failed += exc.lines()
        except (OSError, subprocess.SubprocessError) as exc:
            failed.append(f"{sh.name}: {exc}")
    if failed:
        raise OperationFailed(failed[0], details=failed)
    return results


# --- down and status -----------------------------------------------------------------


def down_host(sh: SandboxHost, purge: bool) -> str:
    """Stop PM2, nginx and sshd of one host, gracefully first; ``purge`` deletes its folders."""
    stopped = []
    search = f"{os.environ.get('PATH', '')}:{SESSION_PATH}"
    if pm2_pid(sh):
        pm2, node = shutil.which("pm2", path=search), shutil.which("node", path=search)
        if pm2 and node:
            _run([pm2, "kill"], pm2_env(sh, node))  # stops the apps, then the daemon
        _stop(sh, pm2_pid, STOP_GRACE_S)
        stopped.append("pm2")
    database, removed = spg.down_database(sh, purge) if spg.holds_database(sh) else (False, [])
    if database:
        stopped.append("postgres")
    if pid := nginx_pid(sh):
        nginx = shutil.which(sh.env.nginx.binary, path=search)
        if not nginx or _run(nginx_argv(sh, nginx, "-s", "quit"))[0] != 0:
            os.kill(pid, signal.SIGQUIT)  # the same graceful quit, without parsing the config
        _stop(sh, nginx_pid, STOP_GRACE_S)
        stopped.append("nginx")
    if pid := sshd_pid(sh):
        os.kill(pid, signal.SIGTERM)  # the listener only; open sessions end on their own
        _stop(sh, sshd_pid, 3.0)
        stopped.append("sshd")
    state = f"down (stopped {', '.join(stopped)})" if stopped else "down (was not running)"
    if purge:
        targets = purge_targets(sh)
        for path in targets:
            shutil.rmtree(path)
        removed += targets
        state += f"; removed {', '.join(map(str, removed)) or 'nothing'}"
    return state


def down(loaded: LoadedInventory, env_name: str, count: int | None = None,
         purge: bool = False) -> list[tuple[SandboxHost, str]]:
    return _each(sandbox_hosts(loaded, env_name, count), lambda sh: down_host(sh, purge))


__all__ = ["ToolMissing", "client_key_path", "known_hosts_path", "sandbox_hosts"]
