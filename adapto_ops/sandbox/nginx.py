"""The sandbox host's nginx: its own prefix and main config, a CA-signed certificate.

The main config includes only the host's sites-enabled folder, where the
deploy installs the site; this module starts, reloads and looks up the master.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

from adapto_ops.errors import OperationFailed
from adapto_ops.render.engine import render_template
from adapto_ops.sandbox.hosts import SandboxHost
from adapto_ops.sandbox.procs import live_pid, must, wait_for, write_file
from adapto_ops.tls import issued_by, write_ca, write_signed

CERT_MIN_DAYS = 7


def render_nginx_conf(sh: SandboxHost) -> str:
    """The sandbox nginx's main config: its prefix, pid and logs, and its sites-enabled."""
    return render_template(
        "sandbox/nginx.conf.j2",
        {
            "project": sh.project, "env_name": sh.env_name, "host": sh.name,
            "prefix": sh.prefix, "main_config": sh.nginx_conf,
            "sites_enabled": sh.sites_enabled,
        },
    )


def nginx_pid(sh: SandboxHost) -> int | None:
    """The pid of this host's nginx master, if it runs."""
    return live_pid(sh.nginx_pid, f" -p {sh.prefix} ")


def nginx_argv(sh: SandboxHost, nginx: str, *extra: str) -> list[str]:
    """nginx with this host's prefix and config; -e keeps start-up errors in the prefix."""
    return [nginx, "-p", str(sh.prefix), "-c", str(sh.nginx_conf), "-e", str(sh.nginx_error_log),
            *extra]


def ca_paths(sh: SandboxHost) -> tuple[Path, Path]:
    """The sandbox CA's certificate (``health.ca_file`` when set) and its key beside it."""
    ca = Path(sh.env.health.ca_file) if sh.env.health.ca_file else sh.sdir / "tls" / "ca.pem"
    return ca, ca.with_suffix(".key")


def ensure_cert(sh: SandboxHost) -> bool:
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


def up_nginx(sh: SandboxHost, nginx: str) -> bool:
    """Start (or reload on a changed config or certificate) the host's nginx; True if started."""
    renewed = ensure_cert(sh)
    changed = write_file(sh.nginx_conf, render_nginx_conf(sh))
    pid = nginx_pid(sh)
    if pid and not (renewed or changed):
        return False  # running as configured; a site the deploy installed is its business
    must(sh.name, nginx_argv(sh, nginx, "-t", "-q"))
    if pid:
        must(sh.name, nginx_argv(sh, nginx, "-s", "reload"))
        return False
    must(sh.name, nginx_argv(sh, nginx))
    if not wait_for(lambda: nginx_pid(sh), 10):
        raise OperationFailed(f"{sh.name}: nginx did not start; see {sh.nginx_error_log}")
    return True
