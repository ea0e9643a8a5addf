"""certbot, openssl and the renewal schedule as shell commands (pure: strings, no I/O).

Everything certbot writes lives under ``tls.certbot_dir`` (its --config-dir); when that
is not the system's /etc/letsencrypt (a sandbox), its work and log folders move beside
it, so a rehearsal never touches this machine's own certbot state.
"""

from __future__ import annotations

import shlex

from adapto_ops.commands import nginx as nginx_cmd
from adapto_ops.inventory.model import Nginx

SYSTEM_CERTBOT_DIR = "/etc/letsencrypt"
LETSENCRYPT_STAGING = "https://acme-staging-v02.api.letsencrypt.org/directory"
HOOK_NAME = "adapto-nginx-reload.sh"
TIMER_UNIT = "adapto-certbot-renew"
q = shlex.quote


def cert_name(nginx: Nginx) -> str:
    """certbot's lineage name: the canonical server name (live/<name>/)."""
    return nginx.canonical_name


def dirs_args(nginx: Nginx) -> list[str]:
    """--config-dir/--work-dir/--logs-dir when certbot's state is not the system's."""
    base = nginx.tls.certbot_dir.rstrip("/")
    if base == SYSTEM_CERTBOT_DIR:
        return []
    return ["--config-dir", base, "--work-dir", f"{base}/work", "--logs-dir", f"{base}/logs"]


def hook_path(nginx: Nginx) -> str:
    """The deploy hook certbot runs after each issue and renewal."""
    return f"{nginx.tls.certbot_dir.rstrip('/')}/{HOOK_NAME}"


def renewal_conf(nginx: Nginx) -> str:
    """certbot's renewal configuration of the lineage: present once certbot has issued."""
    return f"{nginx.tls.certbot_dir.rstrip('/')}/renewal/{cert_name(nginx)}.conf"


def _env_prefix(nginx: Nginx) -> str:
    # certbot (python-requests) trusts a test ACME server's CA only through this variable.
    ca = nginx.tls.acme_ca_file
    return f"REQUESTS_CA_BUNDLE={q(ca)} " if ca else ""


def _join(argv: list[str]) -> str:
    return " ".join(q(a) for a in argv)


def hook_script(nginx: Nginx) -> str:
    """The deploy hook: nginx -t, then a graceful reload (never a reload of a broken config)."""
    return "\n".join([
        "#!/bin/sh",
        "# Written by `adapto ssl issue`: certbot runs it after each issue and renewal.",
        "set -e",
        nginx_cmd.test(nginx),
        nginx_cmd.reload(nginx),
        "",
    ])


def write_file(path: str, mode: str) -> str:
    """Write stdin to ``path`` atomically (a temporary beside it, then rename) with ``mode``."""
    tmp = q(path + ".adapto-new")
    return (f"umask 077 && mkdir -p \"$(dirname {q(path)})\" && cat > {tmp} && "
            f"chmod {mode} {tmp} && mv -f {tmp} {q(path)}")


def stage_file(path: str, mode: str) -> str:
    """Write stdin to ``path`` (a staging name that something else moves into place)."""
    return (f"umask 077 && mkdir -p \"$(dirname {q(path)})\" && cat > {q(path)} && "
            f"chmod {mode} {q(path)}")


def server_args(nginx: Nginx, staging: bool) -> list[str]:
    """Which ACME directory: --staging picks Let's Encrypt's staging one, unless the
    inventory names its own ACME server (a test server already is a staging one)."""
    if nginx.tls.acme_server:
        return ["--server", nginx.tls.acme_server]
    if staging:
        return ["--server", LETSENCRYPT_STAGING]
    return []


def certonly(nginx: Nginx, *, staging: bool = False, email: str | None = None,
             force: bool = False, certbot: str = "certbot") -> str:
    """certbot in webroot mode through nginx's ACME location, for every server name."""
    argv = [certbot, "certonly", "--non-interactive", "--agree-tos", *dirs_args(nginx),
            *server_args(nginx, staging), "--webroot", "-w", nginx.tls.acme_webroot,
            "--cert-name", cert_name(nginx)]
    for name in nginx.server_names:
        argv += ["-d", name]
    email = email or nginx.tls.email
    argv += ["--email", email] if email else ["--register-unsafely-without-email"]
    # --expand: a name added to the inventory grows the same lineage instead of a new one.
    argv += ["--deploy-hook", hook_path(nginx), "--expand",
             "--force-renewal" if force else "--keep-until-expiring"]
    return _env_prefix(nginx) + _join(argv)


def renew(nginx: Nginx, *, force: bool = False, certbot: str = "certbot") -> str:
    """`certbot renew` of this site's lineage; the deploy hook reloads nginx when renewed."""
    argv = [certbot, "renew", "--non-interactive", *dirs_args(nginx),
            "--cert-name", cert_name(nginx), "--no-random-sleep-on-renew"]
    if force:
        argv.append("--force-renewal")
    return _env_prefix(nginx) + _join(argv)


def cron_entry(nginx: Nginx, user: str = "root") -> str:
    """An /etc/cron.d file: try twice a day (certbot renews only within 30 days of expiry)."""
    return "\n".join([
        "# Written by `adapto ssl issue`: renews the site's certificate unattended.",
        "SHELL=/bin/sh",
        "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
        f"17 3,15 * * * {user} {renew(nginx)}",
        "",
    ])


def cron_command(text: str) -> str | None:
    """The command of the (first) schedule line of a cron.d file written by cron_entry."""
    for line in text.splitlines():
        parts = line.split(None, 6)
        if len(parts) == 7 and not line.startswith("#") and "=" not in parts[0]:
            return parts[6]
    return None


def systemd_units(nginx: Nginx) -> dict[str, str]:
    """A oneshot service running the renewal and a timer firing it twice a day."""
    service = "\n".join([
        "[Unit]",
        "Description=Renew the site's certificate (written by adapto ssl issue)",
        "After=network-online.target",
        "",
        "[Service]",
        "Type=oneshot",
        f"ExecStart=/bin/sh -c {q(renew(nginx))}",
        "",
    ])
    timer = "\n".join([
        "[Unit]",
        "Description=Renew the site's certificate twice a day",
        "",
        "[Timer]",
        "OnCalendar=*-*-* 03,15:17:00",
        "RandomizedDelaySec=1h",
        "Persistent=true",
        "",
        "[Install]",
        "WantedBy=timers.target",
        "",
    ])
    return {f"/etc/systemd/system/{TIMER_UNIT}.service": service,
            f"/etc/systemd/system/{TIMER_UNIT}.timer": timer}


def enable_timer() -> str:
    return f"systemctl daemon-reload && systemctl enable --now {TIMER_UNIT}.timer"


HAS_SYSTEMD = "[ -d /run/systemd/system ] && command -v systemctl >/dev/null && echo systemd " \
              "|| echo none"


def read_state(nginx: Nginx) -> str:
    """What `issue` needs to know first: certbot present, systemd, a lineage already."""
    return "; ".join([
        "command -v certbot >/dev/null && echo certbot=yes || echo certbot=no",
        f"({HAS_SYSTEMD}) | sed 's/^/init=/'",
        f"[ -s {q(renewal_conf(nginx))} ] && echo lineage=yes || echo lineage=no",
        f"[ -e {q(nginx.site_config_path)} ] && echo site=yes || echo site=no",
    ])


def bootstrap_paths(nginx: Nginx) -> tuple[str, str]:
    """A stand-in pair nginx serves on a fresh host until certbot's first certificate:
    nginx refuses a site whose certificate files do not exist yet, and certbot needs the
    site's ACME location served first."""
    base = f"{nginx.tls.certbot_dir.rstrip('/')}/adapto-bootstrap/{cert_name(nginx)}"
    return f"{base}/cert.pem", f"{base}/key.pem"


def served_paths_swap(pairs: list[tuple[str, str]], test: str) -> str:
    """Move each staged file onto its live path, keeping the old one; if ``test`` (nginx -t)
    fails, put every old file back and exit 3 with nginx's words on stderr."""
    lines = ["set -e"]
    for live, staged in pairs:
        lines += [f"if [ -e {q(live)} ]; then cp -p {q(live)} {q(live + '.adapto-prev')}; fi",
                  f"mv -f {q(staged)} {q(live)}"]
    lines.append(f"if ! out=$({test} 2>&1); then")
    for live, _ in pairs:
        prev = q(live + ".adapto-prev")
        lines.append(f"  if [ -e {prev} ]; then mv -f {prev} {q(live)}; else rm -f {q(live)}; fi")
    lines += ["  printf '%s\\n' \"$out\" >&2", "  exit 3", "fi"]
    lines += [f"rm -f {q(live + '.adapto-prev')}" for live, _ in pairs]
    return "\n".join(lines)


def file_dates(path: str) -> str:
    """End date and names of a certificate file on the host (openssl 3's -ext)."""
    return (f"openssl x509 -noout -enddate -ext subjectAltName -in {q(path)} 2>&1 | head -n 8")
