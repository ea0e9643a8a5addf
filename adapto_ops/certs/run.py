"""What `adapto ssl issue|renew|install|self-signed` do on one host, step by step.

Each operation leaves the served certificate as it was when it fails: certbot
writes only its own lineage, and nginx's site file and certificate files are
swapped in place only after `nginx -t` accepts them (else the old ones are put
back), then nginx reloads gracefully.
"""

from __future__ import annotations

import hashlib
import secrets
import shlex
import time
from dataclasses import dataclass, field

from adapto_ops.certs.acme import parse_failure
from adapto_ops.certs.served import served_der
from adapto_ops.commands import certbot as cb
from adapto_ops.commands import nginx as nginx_cmd
from adapto_ops.errors import AdaptoError, OperationFailed
from adapto_ops.events import Reporter, Step
from adapto_ops.remote import Transport
from adapto_ops.render.configs import Target, render_nginx

CERTBOT_TIMEOUT_S = 600.0


@dataclass
class HostOutcome:
    """What happened on one host, for the summary and --json."""

    host: str
    action: str
    result: str = "ok"  # ok | unchanged | dry-run
    details: dict[str, object] = field(default_factory=dict)


def _step(reporter: Reporter, target: Target, name: str, message: str = "") -> Step:
    return Step(reporter, target.host.name, name, message)


def fingerprint(der: bytes) -> str:
    return hashlib.sha256(der).hexdigest()


def require_mode(target: Target, allowed: tuple[str, ...], action: str, where: str) -> None:
    """Exit 2 when the environment's tls.mode does not fit ``action``."""
    mode = target.env.nginx.tls.mode
    if mode not in allowed:
        raise AdaptoError(f"{where}: nginx.tls.mode is {mode!r}; `adapto ssl {action}` needs "
                          f"{' or '.join(allowed)}")


def install_site(t: Transport, target: Target, token: str | None, reporter: Reporter) -> bool:
    """Render the site config and put it in place if it differs (nginx -t, old one back on
    failure); True when it changed. nginx is not reloaded here."""
    nginx = target.env.nginx
    site = render_nginx(target, token)
    staged = nginx.site_config_path + ".adapto-new"
    with _step(reporter, target, "nginx", "site config + nginx -t") as s:
        t.run(cb.stage_file(staged, "644"), stdin=site.text.encode(), what="stage site config")
        script = (f"if cmp -s {shlex.quote(staged)} {shlex.quote(nginx.site_config_path)} && "
                  f"[ -L {shlex.quote(nginx.site_enabled_path)} ]; then "
                  f"rm -f {shlex.quote(staged)}; echo UNCHANGED; exit 0; fi\n"
                  + nginx_cmd.install_site(nginx, staged))
        result = t.run(script, check=False, what="nginx -t")
        if not result.ok:
            raise OperationFailed(
                f"{target.host.name}: nginx rejected the site config with the new certificate "
                f"paths; the previous one is back: "
                f"{result.last_error_line(('[emerg]', '[crit]', '[alert]'))}")
        if "UNCHANGED" in result.stdout:
            s.done_message = "site config unchanged"
            return False
        s.done_message = f"site config now serves {nginx.certificate_path}"
    return True


def reload_nginx(t: Transport, target: Target, reporter: Reporter) -> None:
    with _step(reporter, target, "reload", "nginx -t + graceful reload"):
        nginx = target.env.nginx
        t.run(f"{nginx_cmd.test(nginx)} && {{ {nginx_cmd.reload(nginx)}; }}",
              what="nginx reload", timeout=60)


def wait_served(target: Target, expected: str, timeout_s: float = 10.0) -> bool:
    """Poll the live endpoint until it serves the certificate with SHA-256 ``expected``.

    A reload lets old workers finish first, so a new certificate shows a moment later.
    """
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            if fingerprint(served_der(target, target.env.nginx.canonical_name)) == expected:
                return True
        except OSError:
            pass
        if time.monotonic() > deadline:
            return False
        time.sleep(0.2)


def file_fingerprint(t: Transport, target: Target, path: str) -> str | None:
    """SHA-256 of the certificate file on the host (the leaf, DER), as served_der gives it."""
    result = t.run(f"openssl x509 -in {shlex.quote(path)} -outform DER | sha256sum",
                   check=False, mutates=False, what="read certificate")
    word = result.stdout.split()[0] if result.ok and result.stdout.split() else ""
    return word or None


def cron_path(target: Target) -> str:
    """Where the cron entry goes: /etc/cron.d, or the sandbox's own folder (no cron daemon
    of this machine may pick a rehearsal's entry up)."""
    sandbox = target.env.sandbox
    if sandbox is not None:
        return f"{sandbox.dir}/cron.d/adapto-certbot-renew"
    return f"/etc/cron.d/adapto-certbot-{target.env.nginx.canonical_name.replace('.', '-')}"


def schedule_renewal(t: Transport, target: Target, init: str, reporter: Reporter) -> str:
    """A systemd timer where systemd runs, else a cron.d entry; returns where it is."""
    nginx = target.env.nginx
    with _step(reporter, target, "schedule", "unattended renewal") as s:
        if init == "systemd" and target.env.sandbox is None:
            for path, text in cb.systemd_units(nginx).items():
                t.run(cb.write_file(path, "644"), stdin=text.encode(), what=f"write {path}")
            t.run(cb.enable_timer(), what="enable the renewal timer")
            where = f"systemd timer {cb.TIMER_UNIT}.timer"
        else:
            where = cron_path(target)
            t.run(cb.write_file(where, "644"), stdin=cb.cron_entry(nginx).encode(),
                  what="write the cron entry")
        s.done_message = where
    return where


def _preflight(t: Transport, target: Target, reporter: Reporter) -> None:
    """A file in the ACME webroot must come back over HTTP for the canonical name before
    the ACME server is asked: a failed validation counts toward its rate limits."""
    import httpx

    nginx = target.env.nginx
    token = "adapto-" + secrets.token_urlsafe(12)
    path = f"{nginx.tls.acme_webroot}/.well-known/acme-challenge/{token}"
    address = target.host.address.strip("[]")
    host = f"[{address}]" if ":" in address else address
    url = f"http://{host}:{nginx.http_port}/.well-known/acme-challenge/{token}"
    with _step(reporter, target, "preflight", "ACME location served by nginx") as s:
        t.run(cb.write_file(path, "644"), stdin=token.encode(), what="write a test challenge")
        try:
            response = httpx.get(url, headers={"Host": nginx.canonical_name}, timeout=10,
                                 trust_env=False)
            ok = response.status_code == 200 and response.text.strip() == token
            seen = f"HTTP {response.status_code}"
        except httpx.HTTPError as exc:
            ok, seen = False, type(exc).__name__
        finally:
            t.run(f"rm -f {shlex.quote(path)}", check=False, what="remove the test challenge")
        if not ok:
            raise OperationFailed(
                f"{target.host.name}: http://{nginx.canonical_name}:{nginx.http_port}"
                f"/.well-known/acme-challenge/ does not serve {nginx.tls.acme_webroot} ({seen}); "
                f"deploy the site config first (adapto deploy -e {target.env_name})")
        s.done_message = "challenge file served"


def issue(t: Transport, target: Target, token: str | None, reporter: Reporter, *,
          staging: bool, email: str | None, force: bool, dry_run: bool) -> HostOutcome:
    """certbot certonly --webroot, then the site config on certbot's live files, a reload,
    a check that nginx serves the new certificate, and the renewal schedule."""
    nginx = target.env.nginx
    out = HostOutcome(target.host.name, "issue")
    state = dict(line.split("=", 1) for line in t.run(
        cb.read_state(nginx), mutates=False, what="read certbot state").stdout.split()
        if "=" in line)
    if state.get("certbot") != "yes":
        raise OperationFailed(f"{target.host.name}: certbot is not installed "
                              "(apt-get install certbot)")
    t.run(f"mkdir -p {shlex.quote(nginx.tls.acme_webroot)}/.well-known/acme-challenge",
          what="make the ACME webroot")
    t.run(cb.write_file(cb.hook_path(nginx), "755"), stdin=cb.hook_script(nginx).encode(),
          what="write the deploy hook")
    if state.get("lineage") != "yes" and state.get("site") != "yes":
        _bootstrap_site(t, target, token, reporter)
    if not dry_run:
        _preflight(t, target, reporter)
    server = nginx.tls.acme_server or (cb.LETSENCRYPT_STAGING if staging
                                       else "Let's Encrypt")
    with _step(reporter, target, "certbot", f"certonly --webroot ({server})") as s:
        started = time.perf_counter()
        result = t.run(cb.certonly(nginx, staging=staging, email=email, force=force),
                       check=False, what="certbot certonly", timeout=CERTBOT_TIMEOUT_S)
        out.details["certbot_s"] = round(time.perf_counter() - started, 2)
        if not result.ok:
            problem = parse_failure(result.stdout + "\n" + result.stderr)
            out.details["acme_error"] = problem.kind
            raise OperationFailed(f"{target.host.name}: {problem.line(server)}; the served "
                                  "certificate is unchanged")
        kept = "not yet due for renewal" in (result.stdout + result.stderr)
        s.done_message = "kept the current certificate (not due)" if kept else "issued"
        out.details["issued"] = not kept
    if install_site(t, target, token, reporter) or dry_run:
        reload_nginx(t, target, reporter)
    out.details["schedule"] = schedule_renewal(t, target, state.get("init", "none"), reporter)
    if dry_run:
        out.result = "dry-run"
        return out
    _verify_served(t, target, reporter, out)
    return out


def _bootstrap_site(t: Transport, target: Target, token: str | None,
                    reporter: Reporter) -> None:
    """A fresh host (no site config, no certificate yet): the site with a stand-in
    self-signed pair, so nginx serves the ACME location certbot needs."""
    import dataclasses
    import tempfile
    from pathlib import Path

    from adapto_ops.tls import write_self_signed

    nginx = target.env.nginx
    cert, key = cb.bootstrap_paths(nginx)
    with _step(reporter, target, "bootstrap", "stand-in certificate until the first issue"), \
            tempfile.TemporaryDirectory(prefix="adapto-ssl-") as tmp:
        write_self_signed(nginx.server_names, Path(tmp) / "c.pem", Path(tmp) / "k.pem", days=7)
        t.run(cb.write_file(cert, "644"), stdin=(Path(tmp) / "c.pem").read_bytes(),
              what="upload the stand-in certificate")
        t.run(cb.write_file(key, "600"), stdin=(Path(tmp) / "k.pem").read_bytes(),
              what="upload the stand-in key")
    tls = nginx.tls.model_copy(update={"mode": "self-signed", "certificate": cert,
                                       "certificate_key": key})
    env = target.env.model_copy(update={"nginx": nginx.model_copy(update={"tls": tls})})
    install_site(t, dataclasses.replace(target, env=env), token, reporter)
    reload_nginx(t, target, reporter)


def _verify_served(t: Transport, target: Target, reporter: Reporter, out: HostOutcome) -> None:
    nginx = target.env.nginx
    with _step(reporter, target, "verify", "nginx serves the certificate file") as s:
        expected = file_fingerprint(t, target, nginx.certificate_path)
        if expected is None or not wait_served(target, expected):
            raise OperationFailed(f"{target.host.name}: nginx does not serve "
                                  f"{nginx.certificate_path} after the reload")
        out.details["served_sha256"] = expected
        s.done_message = f"served: sha256 {expected[:16]}…"


def renew(t: Transport, target: Target, reporter: Reporter, *, force: bool,
          dry_run: bool) -> HostOutcome:
    """certbot renew (the deploy hook reloads nginx); with --force-renewal, the served
    certificate must change."""
    nginx = target.env.nginx
    out = HostOutcome(target.host.name, "renew")
    before = None if dry_run else _served_or_none(target)
    with _step(reporter, target, "certbot", "renew" + (" --force-renewal" if force else "")) as s:
        result = t.run(cb.renew(nginx, force=force), check=False, what="certbot renew",
                       timeout=CERTBOT_TIMEOUT_S)
        if not result.ok:
            problem = parse_failure(result.stdout + "\n" + result.stderr)
            server = nginx.tls.acme_server or "the ACME server"
            raise OperationFailed(f"{target.host.name}: {problem.line(server)}; the served "
                                  "certificate is unchanged")
        text = result.stdout + result.stderr
        renewed = "No renewals were attempted" not in text and "not due" not in text
        s.done_message = "renewed; the deploy hook reloaded nginx" if renewed else "not due"
        out.details["renewed"] = renewed
    if dry_run:
        out.result = "dry-run"
        return out
    if not renewed:
        out.result = "unchanged"
        return out
    with _step(reporter, target, "verify", "nginx serves the renewed certificate") as s:
        expected = file_fingerprint(t, target, nginx.certificate_path)
        if expected is None or not wait_served(target, expected):
            raise OperationFailed(f"{target.host.name}: renewed, but nginx still serves the "
                                  f"old certificate; run adapto recover nginx -e "
                                  f"{target.env_name}")
        out.details.update(served_sha256=expected, changed=expected != before)
        s.done_message = f"served: sha256 {expected[:16]}…"
    return out


def _served_or_none(target: Target) -> str | None:
    try:
        return fingerprint(served_der(target, target.env.nginx.canonical_name))
    except OSError:
        return None


def upload_pair(t: Transport, target: Target, cert_pem: bytes, key_pem: bytes,
                token: str | None, reporter: Reporter, *, dry_run: bool) -> HostOutcome:
    """Certificate (0644) and key (0600) onto the inventory's paths; nginx -t puts the old
    pair back if it refuses; the site config pointed at them (if it was not); then a
    graceful reload and a check of what is served."""
    nginx = target.env.nginx
    out = HostOutcome(target.host.name, "install")
    cert, key = nginx.certificate_path, nginx.certificate_key_path
    with _step(reporter, target, "upload", f"{cert}, {key} (0600)") as s:
        t.run(cb.stage_file(cert + ".adapto-up", "644"), stdin=cert_pem, what="upload cert")
        t.run(cb.stage_file(key + ".adapto-up", "600"), stdin=key_pem, what="upload key")
        result = t.run(cb.served_paths_swap([(cert, cert + ".adapto-up"),
                                             (key, key + ".adapto-up")], nginx_cmd.test(nginx)),
                       check=False, what="swap the pair + nginx -t")
        if not result.ok:
            raise OperationFailed(f"{target.host.name}: nginx rejected the new pair; the old one "
                                  f"is back: {result.last_error_line(('[emerg]',))}")
        s.done_message = "in place, nginx -t ok"
    install_site(t, target, token, reporter)
    reload_nginx(t, target, reporter)
    if dry_run:
        out.result = "dry-run"
        return out
    _verify_served(t, target, reporter, out)
    return out
