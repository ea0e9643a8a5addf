"""`adapto sandbox up|down`: a local rehearsal server per host, on loopback.

Each host of an environment with a ``sandbox:`` section becomes a real OpenSSH
server on its loopback address (:mod:`.sshd`), an nginx with its own prefix
(:mod:`.nginx`), a PM2 daemon with its own PM2_HOME (:mod:`.pm2`) and, on the
first host, the environment's PostgreSQL (:mod:`.postgres`), so `adapto deploy`
can be rehearsed end to end over SSH on one machine. Every step checks before
it acts, so `up` on a running sandbox only confirms it.
"""

from __future__ import annotations

import os
import secrets
import shutil
import signal
import subprocess
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from functools import partial
from pathlib import Path
from typing import TypeVar

from adapto_ops.errors import AdaptoError, InventoryError, OperationFailed
from adapto_ops.inventory.derived import derive_hosts, forget_count, write_count
from adapto_ops.inventory.hosts import for_host
from adapto_ops.inventory.loader import LoadedInventory
from adapto_ops.inventory.model import Environment, Host
from adapto_ops.inventory.secrets import parse_dotenv
from adapto_ops.sandbox import postgres as spg
from adapto_ops.sandbox.hosts import MARKER, SandboxHost, problems, purge_targets, sandbox_host
from adapto_ops.sandbox.nginx import nginx_argv, nginx_pid, up_nginx
from adapto_ops.sandbox.pm2 import pm2_env, pm2_pid, up_pm2
from adapto_ops.sandbox.procs import (
    INSTALL,
    SESSION_PATH,
    check_bindable,
    find_tool,
    run,
    stop,
    write_file,
)
from adapto_ops.sandbox.sshd import ensure_client_key, sshd_pid, up_sshd

STOP_GRACE_S = 10.0
T = TypeVar("T")


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
            f"--hosts {count}: sandbox {env_name!r} has {len(env.hosts)} host(s); "
            f"`adapto sandbox up -e {env_name} --hosts {count}` derives the others from "
            f"{env.hosts[0].name}"
        )
    hosts = [sandbox_host(loaded, env_name, h) for h in env.hosts[:count]]
    found = [p for sh in hosts for p in problems(sh)]
    if found:
        raise InventoryError(found[0], details=found)
    return hosts


def _with_hosts(loaded: LoadedInventory, env_name: str, count: int) -> LoadedInventory:
    """``loaded`` with ``env_name`` grown to ``count`` hosts derived from its first one."""
    env = derive_hosts(loaded.environment(env_name), env_name, count, str(loaded.path))
    environments = {**loaded.inventory.environments, env_name: env}
    return LoadedInventory(loaded.inventory.model_copy(update={"environments": environments}),
                           loaded.path)


# --- up ------------------------------------------------------------------------------


def ensure_secrets(path: Path, names: list[str]) -> list[str]:
    """Give every secret without a value a random one in ``path`` (0600); return their names."""
    text = path.read_text(encoding="utf-8") if path.is_file() else ""
    values = parse_dotenv(text)
    missing = [n for n in names if not values.get(n)]
    if missing:
        if text and not text.endswith("\n"):
            text += "\n"
        text += "".join(f"{n}={secrets.token_urlsafe(24)}\n" for n in missing)
        write_file(path, text, 0o600)
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


def up_host(sh: SandboxHost, tools: dict[str, str], client_pub: str,
            secrets_file: Path | None = None) -> str:
    """Bring one host up; return what happened, for the table's state column."""
    _ensure_dirs(sh)
    with ThreadPoolExecutor(max_workers=1) as pool:  # initdb takes seconds: meanwhile sshd, nginx
        database = pool.submit(lambda: spg.holds_database(sh) and spg.up_database(sh, secrets_file))
        sshd, nginx = up_sshd(sh, tools["ssh-keygen"], client_pub), up_nginx(sh, tools["nginx"])
        # Before PM2: its daemon resurrects apps that connect to the database.
        did = {"postgres": database.result(), "sshd": sshd, "nginx": nginx,
               "pm2": up_pm2(sh, tools["pm2"], tools["node"])}
    started = [name for name, yes in did.items() if yes]
    return f"up (started {', '.join(started)})" if started else "up (already running)"


def up(
    loaded: LoadedInventory, env_name: str, count: int | None = None,
    notes: list[str] | None = None,
) -> list[tuple[SandboxHost, str]]:
    """Check everything first, then bring the hosts up in parallel.

    ``notes`` receives one line per generated secrets file (names only, never values).
    """
    env = loaded.environment(env_name)
    declared = len(env.hosts)
    # --hosts beyond the declared hosts: derive the others from the first one.
    grown = count if count is not None and env.sandbox and count > declared else None
    if grown is not None:
        loaded = _with_hosts(loaded, env_name, grown)
    hosts = sandbox_hosts(loaded, env_name, count)
    nginx_binary = hosts[0].env.nginx.binary
    tools = {name: find_tool(name, nginx_binary if name == "nginx" else None) for name in INSTALL}
    for sh in hosts:
        if not sshd_pid(sh):
            check_bindable(sh)
    if grown is not None:
        # Recorded before acting: a host that fails half-way up is still one `down` stops.
        path = write_count(loaded.base_dir, env_name, grown)
        if notes is not None:
            extra = ", ".join(f"{sh.name} ({sh.host.address})" for sh in hosts[declared:])
            notes.append(f"derived {extra} from {hosts[0].name}; every -e {env_name} command "
                         f"now acts on {grown} hosts ({path}; `adapto sandbox down` forgets it)")
    pubs: dict[Path, str] = {}
    for sh in hosts:
        if sh.client_key not in pubs:
            pubs[sh.client_key] = _local(partial(ensure_client_key, sh.client_key,
                                                 tools["ssh-keygen"]),
                                         f"the deploy key {sh.client_key}", "hosts[].key_file")
    secrets_files = {
        loaded.resolve(sh.env.secrets.file): sh.env.secrets.names
        for sh in hosts if sh.env.secrets.file
    }
    for path, names in secrets_files.items():
        # The database URLs are written by the cluster's host below, never made up.
        wanted = [n for n in names if n not in spg.DATABASE_SECRETS]
        added = _local(partial(ensure_secrets, path, wanted), f"the secrets file {path}",
                       "secrets.file")
        if added and notes is not None:
            notes.append(f"generated random {', '.join(added)} in {path}")
    return _each(hosts, lambda sh: up_host(sh, tools, pubs[sh.client_key], loaded.resolve(
        sh.env.secrets.file) if sh.env.secrets.file else None), "up")


def _local(make: Callable[[], T], what: str, field: str) -> T:
    """Run ``make`` (which writes a local file); an OSError becomes one line naming it."""
    try:
        return make()
    except OSError as exc:
        where = f" ({exc.filename})" if exc.filename else ""
        raise InventoryError(f"sandbox up: cannot write {what}: {exc.strerror or exc}{where}; "
                             f"fix {field} in the inventory or that folder") from None


def _each(
    hosts: list[SandboxHost], action: Callable[[SandboxHost], str], verb: str
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
        except OSError as exc:
            where = f" on {exc.filename}" if exc.filename else ""
            failed.append(f"{sh.name}: sandbox {verb}: {exc.strerror or exc}{where}; check "
                          "that path and the host's sandbox folders in the inventory")
        except subprocess.SubprocessError as exc:
            failed.append(f"{sh.name}: sandbox {verb}: {exc}")
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
            run([pm2, "kill"], pm2_env(sh, node))  # stops the apps, then the daemon
        stop(sh, pm2_pid, STOP_GRACE_S)
        stopped.append("pm2")
    database, removed = spg.down_database(sh, purge) if spg.holds_database(sh) else (False, [])
    if database:
        stopped.append("postgres")
    if pid := nginx_pid(sh):
        nginx = shutil.which(sh.env.nginx.binary, path=search)
        if not nginx or run(nginx_argv(sh, nginx, "-s", "quit"))[0] != 0:
            os.kill(pid, signal.SIGQUIT)  # the same graceful quit, without parsing the config
        stop(sh, nginx_pid, STOP_GRACE_S)
        stopped.append("nginx")
    if pid := sshd_pid(sh):
        os.kill(pid, signal.SIGTERM)  # the listener only; open sessions end on their own
        stop(sh, sshd_pid, 3.0)
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
         purge: bool = False, notes: list[str] | None = None) -> list[tuple[SandboxHost, str]]:
    """Stop the hosts; once all of them are down, forget any derived ones."""
    hosts = sandbox_hosts(loaded, env_name, count)
    results = _each(hosts, lambda sh: down_host(sh, purge), "down")
    if len(hosts) == len(loaded.environment(env_name).hosts) and \
            forget_count(loaded.base_dir, env_name) and notes is not None:
        notes.append(f"forgot the derived hosts: -e {env_name} means the hosts "
                     f"{loaded.path.name} declares again")
    return results
