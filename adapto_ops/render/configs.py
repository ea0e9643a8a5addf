"""Pure rendering: (environment, host) -> the files that host needs, as text.

Each ``*_context`` function turns the validated inventory into the few values
a template needs; the text itself lives in ``templates/``. Nothing here
touches the network or the disk other than reading templates.
"""

from __future__ import annotations

import re
import shlex
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from adapto_ops.commands.firewall import ssh_rule, ufw_commands
from adapto_ops.errors import AdaptoError
from adapto_ops.inventory.hosts import for_host
from adapto_ops.inventory.model import Environment, Host, Nginx
from adapto_ops.inventory.secrets import SecretValues, dotenv_quote, mask
from adapto_ops.layout import ReleaseLayout
from adapto_ops.render.engine import render_template

KINDS = ("nginx", "pm2", "firewall", "env", "logrotate")


@dataclass(frozen=True)
class RenderedFile:
    """One rendered config: where it goes on the host and what it says."""

    kind: str
    name: str  # file name under --out DIR/<kind>/
    path: str  # where it is installed on the host
    text: str
    mode: int = 0o644
    # What may be printed: differs from text only when the file holds secrets.
    display: str | None = None

    @property
    def shown(self) -> str:
        return self.text if self.display is None else self.display


@dataclass(frozen=True)
class Target:
    """Everything rendering needs about one host of one environment."""

    project: str
    env_name: str
    env: Environment  # already resolved for this host ({host}/{address} filled in)
    host: Host

    @classmethod
    def of(cls, project: str, env_name: str, env: Environment, host: Host) -> Target:
        return cls(project, env_name, for_host(env, host), host)

    @property
    def layout(self) -> ReleaseLayout:
        return ReleaseLayout(self.env.paths.root)

    @property
    def prefix(self) -> str:
        """The project's name as an nginx identifier, for names shared at http{} level."""
        return re.sub(r"[^a-z0-9]+", "_", self.project.lower()).strip("_")

    def header(self) -> dict[str, Any]:
        return {"project": self.project, "env_name": self.env_name, "host": self.host.name}


# --- nginx -------------------------------------------------------------------

OCSP_REASONS = {
    "self-signed": "a self-signed certificate has no OCSP responder.",
    "letsencrypt": "Let's Encrypt certificates carry no OCSP responder URL since 2025.",
    "provided": "no issuer chain (tls.trusted_certificate) given to verify responses.",
    "no-resolver": "no tls.ocsp_resolver to look the responder up with.",
}


def upstream_servers(env: Environment) -> list[str]:
    """Every backend instance of every backend host, as nginx `server` addresses."""
    return [
        f"{host.private_address}:{port}"
        for host in env.hosts_with("backend")
        for port in env.backend.ports
    ]


def https_origin(env: Environment) -> str:
    port = env.nginx.https_port
    return f"https://{env.nginx.canonical_name}" + ("" if port == 443 else f":{port}")


def _ocsp_reason(nginx: Nginx) -> str:
    if nginx.tls.ocsp_stapling is False:
        return "disabled in the inventory."
    if nginx.tls.mode == "provided" and nginx.tls.trusted_certificate:
        return OCSP_REASONS["no-resolver"]
    return OCSP_REASONS[nginx.tls.mode]


def nginx_context(target: Target) -> dict[str, Any]:
    env, nginx = target.env, target.env.nginx
    aliases = nginx.server_names[1:] if nginx.redirect_aliases else []
    port_suffix = "" if nginx.https_port == 443 else f":{nginx.https_port}"
    return {
        **target.header(),
        "prefix": target.prefix,
        "server_names": nginx.server_names,
        "canonical": nginx.canonical_name,
        "aliases": aliases,
        "https_origin": https_origin(env),
        # One hop to the canonical name when aliases redirect; else keep the name asked for.
        "redirect_target": https_origin(env) if aliases else f"https://$host{port_suffix}",
        "listen": nginx.listen,
        "default": " default_server" if nginx.default_server else "",
        "http_port": nginx.http_port,
        "https_port": nginx.https_port,
        "http2": nginx.http2,
        "tls": {
            "certificate": nginx.certificate_path,
            "certificate_key": nginx.certificate_key_path,
            "trusted_certificate": nginx.trusted_certificate_path,
            "ocsp_stapling": nginx.ocsp_stapling,
            "ocsp_reason": _ocsp_reason(nginx),
            "hsts_max_age": nginx.tls.hsts_max_age,
            "ocsp_resolver": nginx.tls.ocsp_resolver,
        },
        "acme_webroot": nginx.tls.acme_webroot,
        "access_log": nginx.access_log,
        "error_log": nginx.error_log,
        "dist_root": f"{target.layout.current}/dist",
        "assets_dir": env.frontend.assets_dir,
        "client_max_body_size": nginx.client_max_body_size,
        "rate_limits": nginx.rate_limits.model_dump(),
        "websocket_path": nginx.websocket_path,
        "upstream": {
            "name": f"{target.prefix}_backend",
            "servers": upstream_servers(env),
            "keepalive": nginx.upstream_keepalive,
            "max_fails": 2,
            "fail_timeout_s": UPSTREAM_FAIL_TIMEOUT_S,
        },
    }


# After an instance fails, nginx skips it this long; a rolling restart waits
# this long after an instance is healthy again before stopping the next one.
UPSTREAM_FAIL_TIMEOUT_S = 2


PROBE_TOKEN_RE = re.compile(r"^[A-Za-z0-9_+/=.-]{16,256}$")


def probe_token_value(target: Target, secrets: SecretValues) -> str | None:
    """The environment's probe token, checked to be safe inside an nginx string."""
    name = target.env.health.probe_token
    value = secrets.values.get(name) if name else None
    if value is not None and not PROBE_TOKEN_RE.match(value):
        raise AdaptoError(f"secret {name}: the probe token must be 16-256 characters of "
                          "A-Z a-z 0-9 _ + / = . - (e.g. `openssl rand -hex 32`)")
    return value


def render_nginx(target: Target, probe_token: str | None = None) -> RenderedFile:
    """The site config; with ``probe_token``, requests carrying it skip the rate limits.

    The token is a secret: ``display`` shows it masked, ``text`` has the real one.
    """
    nginx = target.env.nginx
    context = nginx_context(target)
    return RenderedFile(
        kind="nginx",
        name=f"{nginx.canonical_name}.conf",
        path=nginx.site_config_path,
        text=render_template("nginx/site.conf.j2", {**context, "probe_token": probe_token}),
        display=(render_template("nginx/site.conf.j2",
                                 {**context, "probe_token": mask(probe_token)})
                 if probe_token else None),
    )


# --- PM2 ---------------------------------------------------------------------


def instance_name(backend_name: str, port: int) -> str:
    """PM2 app name of the instance on ``port``; all share the namespace backend_name."""
    return f"{backend_name}-{port}"


def pm2_apps(target: Target, cwd: str) -> list[dict[str, Any]]:
    backend = target.env.backend
    apps = []
    for port in backend.ports:
        argv = shlex.split(
            backend.start.replace("{port}", str(port)).replace("{bind}", backend.bind)
        )
        script = argv[0]
        if "/" in script and not script.startswith("/"):
            # PM2 would look a bare relative path up from its own cwd at start-up.
            script = f"{cwd}/{script.removeprefix('./')}"
        name = instance_name(backend.name, port)
        apps.append(
            {
                "name": name,
                "script": script,
                "args": argv[1:],
                "out_file": f"{target.layout.log_dir}/{name}-out.log",
                "error_file": f"{target.layout.log_dir}/{name}-error.log",
                "env": {
                    **backend.env,
                    "PORT": str(port),
                    "HOST": backend.bind,
                    "ADAPTO_INSTANCE": name,
                },
            }
        )
    return apps


def render_pm2(target: Target, release_dir: str | None = None) -> RenderedFile:
    """The ecosystem file; ``release_dir`` pins cwd to a real release path.

    PM2 resolves a symlinked cwd once, at start, and keeps it across restarts
    (PM2 issues #2963, #2510), so a deploy renders the release's own path and
    starts each instance afresh rather than trusting `current`.
    """
    base = release_dir or target.layout.current
    cwd = f"{base}/backend"
    backend = target.env.backend
    context = {
        **target.header(),
        "namespace": backend.name,
        "cwd": cwd,
        "env_file": target.layout.env_file,
        "memory_limit": backend.memory_limit,
        "kill_timeout_ms": backend.kill_timeout_ms,
        "apps": pm2_apps(target, cwd),
    }
    return RenderedFile(
        kind="pm2",
        name="ecosystem.config.js",
        path=f"{base}/ecosystem.config.js",
        text=render_template("pm2/ecosystem.config.js.j2", context),
    )


# --- firewall, env, logrotate ---------------------------------------------------


def render_firewall(target: Target) -> RenderedFile:
    context = {
        **target.header(),
        "ssh_rule": ssh_rule(target.host),
        "commands": ufw_commands(target.env, target.host),
    }
    return RenderedFile(
        kind="firewall",
        name="ufw.sh",
        path=f"{target.layout.config_dir}/ufw.sh",
        text=render_template("firewall/ufw.sh.j2", context),
        mode=0o755,
    )


def env_variables(target: Target, secrets: SecretValues) -> list[tuple[str, str]]:
    """Plain backend.env values first, then the secrets we have values for."""
    plain = list(target.env.backend.env.items())
    return plain + [(k, v) for k, v in secrets.values.items() if k not in target.env.backend.env]


def render_env(target: Target, secrets: SecretValues, secrets_file: str) -> RenderedFile:
    variables = env_variables(target, secrets)
    secret_names = set(secrets.values)

    def text(show: bool) -> str:
        rows = [
            (k, dotenv_quote(v) if show or k not in secret_names else mask(v))
            for k, v in variables
        ]
        context = {
            **target.header(),
            "variables": rows,
            "missing": secrets.missing,
            "secrets_file": secrets_file,
        }
        return render_template("env/backend.env.j2", context)

    return RenderedFile(
        kind="env",
        name="backend.env",
        path=target.layout.env_file,
        text=text(show=True),
        mode=0o600,
        display=text(show=False),
    )


def render_logrotate(target: Target) -> RenderedFile:
    path = target.env.paths.logrotate_config or f"/etc/logrotate.d/{target.project}"
    context = {
        **target.header(),
        "log_dir": target.layout.log_dir,
        "keep_days": 14,
        "user": target.host.user,
    }
    return RenderedFile(
        kind="logrotate",
        name=path.rsplit("/", 1)[-1],
        path=path,
        text=render_template("logrotate/backend.j2", context),
    )


def render_target(
    target: Target,
    kinds: Iterable[str],
    secrets: SecretValues,
    secrets_file: str,
    release_dir: str | None = None,
) -> list[RenderedFile]:
    """The files of ``kinds`` for one host, in a stable order."""
    wanted = set(kinds)
    files: list[RenderedFile] = []
    if "nginx" in wanted:
        files.append(render_nginx(target, probe_token_value(target, secrets)))
    if "pm2" in wanted:
        files.append(render_pm2(target, release_dir))
    if "firewall" in wanted:
        files.append(render_firewall(target))
    if "env" in wanted:
        files.append(render_env(target, secrets, secrets_file))
    if "logrotate" in wanted:
        files.append(render_logrotate(target))
    return files
