"""Validate rendered files with the real tools, on this machine, touching nothing live.

- nginx: the site file inside a throw-away prefix, run through `nginx -t`;
  certificates that are not readable here are replaced by a throw-away
  self-signed pair, and log files are redirected into the prefix when their
  folder cannot be written, so only the configuration itself is judged.
- PM2: the ecosystem file is loaded with node, as PM2 loads it.
- ufw: every command run with `ufw --dry-run`.
- logrotate: `logrotate --debug` with a private state file.
- env: every variable the backend requires has a value.
"""

from __future__ import annotations

import json
import os
import shlex
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

from adapto_ops.inventory.secrets import parse_dotenv
from adapto_ops.render.configs import RenderedFile, Target
from adapto_ops.tls import write_self_signed

TIMEOUT_S = 60


@dataclass(frozen=True)
class CheckResult:
    """What one real tool said about one rendered file."""

    kind: str
    host: str
    ok: bool
    summary: str  # one line
    output: str = ""  # the tool's full output, for --verbose
    warnings: tuple[str, ...] = ()


def _missing_tool(kind: str, host: str, tool: str, package: str) -> CheckResult:
    return CheckResult(
        kind, host, False,
        f"{tool} not found on this machine: install it (apt-get install {package})",
    )


def _run(argv: list[str], **kwargs: object) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        argv, capture_output=True, text=True, timeout=TIMEOUT_S, **kwargs
    )


def _first_line(output: str, markers: tuple[str, ...]) -> str:
    for line in output.splitlines():
        if any(m in line for m in markers):
            return line.strip()
    lines = [line.strip() for line in output.splitlines() if line.strip()]
    return lines[-1] if lines else "(no output)"


# --- nginx ----------------------------------------------------------------------


def nginx_main_config(site_path: str, prefix: Path, mime_types: Path | None) -> str:
    """The smallest nginx.conf that includes a site file at http{} level."""
    mime = f"    include {mime_types};\n" if mime_types else ""
    return (
        f"pid {prefix}/nginx.pid;\n"
        f"error_log {prefix}/logs/error.log;\n"
        "events { worker_connections 64; }\n"
        "http {\n"
        f"{mime}"
        "    default_type application/octet-stream;\n"
        f"    include {site_path};\n"
        "}\n"
    )


def _readable(path: str) -> bool:
    return os.access(path, os.R_OK)


def _writable_dir(path: str) -> bool:
    return os.access(os.path.dirname(path) or ".", os.W_OK)


def check_nginx(file: RenderedFile, target: Target, binary: str | None = None) -> CheckResult:
    """`nginx -t` on the site file in a throw-away prefix."""
    host = target.host.name
    nginx = target.env.nginx
    exe = shutil.which(binary or nginx.binary) or shutil.which("nginx", path="/usr/sbin:/sbin")
    if exe is None:
        return _missing_tool("nginx", host, "nginx", "nginx")
    with tempfile.TemporaryDirectory(prefix="adapto-nginx-check-") as tmp:
        prefix = Path(tmp)
        (prefix / "logs").mkdir()
        (prefix / "conf").mkdir()
        text = file.text
        substituted: list[str] = []
        cert, key = nginx.certificate_path, nginx.certificate_key_path
        if not (_readable(cert) and _readable(key)):
            fake_cert, fake_key = prefix / "tls" / "cert.pem", prefix / "tls" / "key.pem"
            write_self_signed(nginx.server_names, fake_cert, fake_key, days=1)
            text = text.replace(f" {cert};", f" {fake_cert};").replace(f" {key};", f" {fake_key};")
            substituted.append("certificate")
            trusted = nginx.trusted_certificate_path
            if trusted and not _readable(trusted):
                text = text.replace(f" {trusted};", f" {fake_cert};")
        for log in {nginx.access_log, nginx.error_log}:
            if not _writable_dir(log):
                text = text.replace(f" {log} ", f" {prefix}/logs/{os.path.basename(log)} ")
                substituted.append("log folder")
        site = prefix / "conf" / "site.conf"
        site.write_text(text, encoding="utf-8")
        mime = Path("/etc/nginx/mime.types")
        main = prefix / "conf" / "nginx.conf"
        main.write_text(nginx_main_config(str(site), prefix, mime if mime.is_file() else None))
        proc = _run([exe, "-t", "-q", "-p", str(prefix), "-c", str(main)])
        output = (proc.stdout + proc.stderr).replace(str(site), file.path)
    warnings = tuple(line.strip() for line in output.splitlines() if "[warn]" in line)
    note = f" (throw-away {' and '.join(sorted(set(substituted)))})" if substituted else ""
    if proc.returncode != 0:
        reason = _first_line(output, ("[emerg]", "[crit]", "[alert]", "[error]"))
        return CheckResult("nginx", host, False, f"nginx -t rejected {file.path}: {reason}", output)
    return CheckResult(
        "nginx", host, True, f"nginx -t accepts {file.path}{note}", output, warnings
    )


# --- PM2 ---------------------------------------------------------------------------

NODE_LOADER = r"""
const file = process.argv[1];
const config = require(file);
const apps = config && config.apps;
if (!Array.isArray(apps) || apps.length === 0) throw new Error('no apps array in ' + file);
for (const app of apps) {
  for (const key of ['name', 'script', 'cwd']) {
    if (typeof app[key] !== 'string' || !app[key]) throw new Error(`app without ${key}`);
  }
}
console.log(JSON.stringify(apps.map(a => ({name: a.name, port: a.env && a.env.PORT,
  script: a.script, kill_timeout: a.kill_timeout}))));
"""


def check_pm2(file: RenderedFile, target: Target) -> CheckResult:
    """Load the ecosystem file with node, exactly as `pm2 start` requires it."""
    host = target.host.name
    node = shutil.which("node")
    if node is None:
        return _missing_tool("pm2", host, "node", "nodejs")
    with tempfile.TemporaryDirectory(prefix="adapto-pm2-check-") as tmp:
        path = Path(tmp) / "ecosystem.config.js"
        path.write_text(file.text, encoding="utf-8")
        proc = _run([node, "-e", NODE_LOADER, str(path)])
    output = proc.stdout + proc.stderr
    if proc.returncode != 0:
        reason = _first_line(output, ("Error", "error"))
        return CheckResult("pm2", host, False, f"node cannot load {file.path}: {reason}", output)
    apps = json.loads(proc.stdout)
    ports = ", ".join(str(a["port"]) for a in apps)
    return CheckResult(
        "pm2", host, True, f"node loads {file.path}: {len(apps)} app(s) on port(s) {ports}", output
    )


# --- ufw -----------------------------------------------------------------------------


def check_firewall(file: RenderedFile, target: Target) -> CheckResult:
    """Each `ufw ...` line of the script, run with --dry-run (changes nothing)."""
    host = target.host.name
    ufw = shutil.which("ufw") or shutil.which("ufw", path="/usr/sbin:/sbin")
    if ufw is None:
        return _missing_tool("firewall", host, "ufw", "ufw")
    commands = [
        shlex.split(line) for line in file.text.splitlines() if line.startswith("ufw ")
    ]
    outputs = []
    for argv in commands:
        proc = _run([ufw, "--dry-run", *argv[1:]])
        outputs.append(proc.stdout + proc.stderr)
        if proc.returncode != 0:
            reason = _first_line(proc.stdout + proc.stderr, ("ERROR",))
            return CheckResult(
                "firewall", host, False, f"ufw rejects `{shlex.join(argv)}`: {reason}",
                "\n".join(outputs),
            )
    return CheckResult(
        "firewall", host, True, f"ufw --dry-run accepts all {len(commands)} commands",
        "\n".join(outputs),
    )


# --- logrotate, env ------------------------------------------------------------------------


def check_logrotate(file: RenderedFile, target: Target) -> CheckResult:
    host = target.host.name
    exe = shutil.which("logrotate") or shutil.which("logrotate", path="/usr/sbin:/sbin")
    if exe is None:
        return _missing_tool("logrotate", host, "logrotate", "logrotate")
    with tempfile.TemporaryDirectory(prefix="adapto-logrotate-check-") as tmp:
        conf = Path(tmp) / "adapto.conf"
        conf.write_text(file.text, encoding="utf-8")
        proc = _run([exe, "--debug", "--state", str(Path(tmp) / "state"), str(conf)])
    output = proc.stdout + proc.stderr
    errors = [line for line in output.splitlines() if line.startswith("error:")]
    if proc.returncode != 0 or errors:
        reason = errors[0] if errors else _first_line(output, ("error",))
        return CheckResult("logrotate", host, False, f"logrotate rejects {file.path}: {reason}",
                           output)
    return CheckResult("logrotate", host, True, f"logrotate --debug accepts {file.path}", output)


def check_env(file: RenderedFile, target: Target) -> CheckResult:
    """Every variable in backend.requires has a non-empty value in the file."""
    host = target.host.name
    values = parse_dotenv(file.text)
    missing = [name for name in target.env.backend.requires if not values.get(name)]
    missing += [
        name for name in target.env.secrets.names if not values.get(name) and name not in missing
    ]
    if missing:
        return CheckResult(
            "env", host, False,
            f"{file.path}: no value for {', '.join(missing)} (export them or add them to the "
            "secrets file)",
        )
    return CheckResult("env", host, True, f"{file.path}: all {len(values)} variables set")


CHECKERS = {
    "nginx": check_nginx,
    "pm2": check_pm2,
    "firewall": check_firewall,
    "logrotate": check_logrotate,
    "env": check_env,
}


def check_file(file: RenderedFile, target: Target) -> CheckResult:
    return CHECKERS[file.kind](file, target)
