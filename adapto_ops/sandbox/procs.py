"""Local process helpers of `adapto sandbox`: find tools, run them, wait, write, stop.

Everything here is generic (no sshd, nginx or PM2 specifics), so the modules
for each daemon share one way to run a program, read a pid file and stop it.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from adapto_ops.errors import AdaptoError, OperationFailed
from adapto_ops.sandbox.hosts import SandboxHost

# The PATH sshd gives a root session (OpenSSH's _PATH_STDPATH with sbin for
# root); the PM2 daemon is started with it so its apps see what a deploy sees.
SESSION_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
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


def run(
    argv: list[str], env: dict[str, str] | None = None, timeout: float = 60
) -> tuple[int, str]:
    """Run ``argv`` to completion; (exit code, stdout and stderr together)."""
    # Output goes to a file, not a pipe: daemons started here would inherit a
    # pipe and keep the reader waiting for EOF long after the command returned.
    with tempfile.TemporaryFile() as out:
        proc = subprocess.run(
            argv, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
            env=env, timeout=timeout, check=False,
        )
        out.seek(0)
        return proc.returncode, out.read().decode(errors="replace")


def must(host: str, argv: list[str], env: dict[str, str] | None = None) -> str:
    """Run ``argv``; its output, or OperationFailed naming ``host`` and its last line."""
    code, output = run(argv, env)
    if code != 0:
        lines = [ln.strip() for ln in output.splitlines() if ln.strip()]
        raise OperationFailed(
            f"{host}: `{' '.join(argv)}` failed: {lines[-1] if lines else f'exit {code}'}"
        )
    return output


def wait_for(done: Callable[[], object], timeout: float) -> bool:
    """Poll ``done`` every 50 ms for up to ``timeout`` seconds; True once it is truthy."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if done():
            return True
        time.sleep(0.05)
    return bool(done())


def write_file(path: Path, text: str, mode: int = 0o644) -> bool:
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


def stop(sh: SandboxHost, alive: Callable[[SandboxHost], int | None], grace: float) -> None:
    """Wait ``grace`` seconds for the process to exit, then SIGTERM it, then SIGKILL it."""
    for sig in (None, signal.SIGTERM, signal.SIGKILL):
        pid = alive(sh)
        if pid is None:
            return
        if sig is not None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, sig)
        wait_for(lambda: not alive(sh), grace if sig is None else 3.0)


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


def tcp_open(address: str, port: int, timeout: float = 1.0) -> bool:
    """True when something accepts a TCP connection on address:port."""
    try:
        with socket.create_connection((address, port), timeout=timeout):
            return True
    except OSError:
        return False


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
