"""The typed shape of inventory.yaml.

Every model forbids unknown keys, so a misspelt field is an error with a
suggestion instead of a silently ignored setting. Defaults are the runbook's
values; the sandbox environment overrides only what differs on loopback.

Strings in a few fields may carry the placeholders ``{host}`` (the host's
name) and ``{address}`` (its address): that is how one sandbox environment
gives every loopback host its own root folder and nginx prefix. They are
resolved per host by :func:`adapto_ops.inventory.hosts.for_host`.
"""

from __future__ import annotations

import ipaddress
import re
from typing import Annotated, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, model_validator

NAME_RE = r"^[a-z0-9][a-z0-9_-]{0,62}$"
ENV_VAR_RE = r"^[A-Z_][A-Z0-9_]*$"
HOSTNAME_RE = re.compile(
    r"^(\*\.)?([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?\.)*[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$"
)
SIZE_RE = r"^[0-9]+[kKmMgG]?$"
RATE_RE = r"^[1-9][0-9]*r/[sm]$"

Port = Annotated[int, Field(ge=1, le=65535)]
Name = Annotated[str, Field(pattern=NAME_RE)]
EnvVarName = Annotated[str, Field(pattern=ENV_VAR_RE)]


def _absolute(value: str) -> str:
    if not value.startswith("/"):
        raise ValueError(f"must be an absolute path (starting with /), got {value!r}")
    bare = value.replace("{host}", "").replace("{address}", "")
    if re.search(r"[\s'\";{}$]", bare):
        raise ValueError(
            "must not contain spaces, quotes, semicolons, braces or $ (nginx and the shell "
            "would read them as syntax)"
        )
    return value


def _hostname(value: str) -> str:
    if not HOSTNAME_RE.match(value):
        raise ValueError(f"{value!r} is not a valid host name (lowercase letters, digits, dots)")
    return value


AbsPath = Annotated[str, AfterValidator(_absolute)]


def _ip_for_nginx(value: str) -> str:
    """An IP address as nginx writes it: IPv4 as is, IPv6 in brackets."""
    try:
        if "%" in value:  # a scope id (fe80::1%eth0): nginx has no syntax for it
            raise ValueError
        ip = ipaddress.ip_address(value.strip("[]"))
    except ValueError:
        raise ValueError(f"{value!r} is not an IP address") from None
    return f"[{ip}]" if ip.version == 6 else str(ip)


def _listen_address(value: str) -> str:
    """*, an IPv4 or [IPv6] address, a host name, or the {address} placeholder."""
    if value in {"*", "{address}"}:
        return value
    if re.fullmatch(r"[0-9.]+", value) or ":" in value:
        return _ip_for_nginx(value)
    if value.startswith("*."):
        raise ValueError(f"{value!r}: a wildcard names no address to listen on or connect to")
    return _hostname(value)


def _backend_address(value: str) -> str:
    """Like a listen address, but one nginx can connect to: not *."""
    if value == "*":
        raise ValueError("'*' is no address nginx can connect to; use the host's address")
    return _listen_address(value)


def _distinct_listen(values: list[str]) -> list[str]:
    seen: set[str] = set()
    for value in values:
        key = "0.0.0.0" if value == "*" else value  # nginx treats both as every IPv4 address
        if key in seen:
            raise ValueError(f"{value!r} is listed twice (nginx refuses a duplicate listen)")
        seen.add(key)
    return values


def _not_api(value: str) -> str:
    if value == "api":
        raise ValueError("'api' would shadow the /api/ proxy; name the assets folder otherwise")
    return value
HostName = Annotated[str, AfterValidator(_hostname)]


def _unique(values: list[str]) -> list[str]:
    seen: set[str] = set()
    for value in values:
        if value in seen:
            raise ValueError(f"{value!r} is listed twice")
        seen.add(value)
    return values


class Strict(BaseModel):
    """Base for every inventory section: unknown keys are errors, objects are immutable.

    Strict types: YAML already gives ints, bools and strings, so `instances: yes`
    or `port: "22"` is a mistake to report, not a value to coerce.
    """

    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)


class Host(Strict):
    """One server we reach over SSH."""

    name: Name
    address: Annotated[str, Field(min_length=1, pattern=r"^[A-Za-z0-9.:\-\[\]]+$")]
    port: Port = 22
    user: Annotated[str, Field(pattern=r"^[a-z_][a-z0-9_-]*$")] = "root"
    key_file: str | None = None
    roles: Annotated[
        list[Literal["web", "backend"]], Field(min_length=1), AfterValidator(_unique)
    ] = ["web", "backend"]
    # Where nginx on a web host reaches this host's backend instances.
    private_address: Annotated[str, AfterValidator(_backend_address)] = "127.0.0.1"
    # "local": adapto runs on this host itself (the installed monitor) and needs no SSH.
    connection: Literal["ssh", "local"] = "ssh"


class Paths(Strict):
    """Where releases live on a host (DESIGN.md section 4)."""

    root: AbsPath
    keep_releases: Annotated[int, Field(ge=2, le=100)] = 5
    # Where the rotation rules for the backend logs go (default /etc/logrotate.d/<project>).
    logrotate_config: AbsPath | None = None


class Frontend(Strict):
    """The static React/Vite build nginx serves."""

    source: str = "."
    build: str | None = "npm ci && npm run build"
    dist: str = "dist"
    assets_dir: Annotated[
        str, Field(pattern=r"^[A-Za-z0-9_.-]+$"), AfterValidator(_not_api)
    ] = "assets"


class Backend(Strict):
    """The API process(es) PM2 runs behind nginx."""

    name: Name = "ai-platform-backend"
    kind: Literal["python", "node"]
    source: str
    install: str | None = None
    build: str | None = None
    # {port} and {bind} are replaced per instance; Node backends read PORT instead.
    start: Annotated[str, Field(min_length=1)]
    base_port: Port = 3001
    instances: Annotated[int, Field(ge=1, le=16)] = 2
    bind: str = "127.0.0.1"
    health_path: Annotated[str, Field(pattern=r"^/[A-Za-z0-9/_.-]*$")] = "/api/health"
    env: dict[EnvVarName, str] = {}
    requires: Annotated[list[EnvVarName], AfterValidator(_unique)] = []
    dependency_files: list[str] | None = None
    memory_limit: Annotated[str, Field(pattern=r"^[0-9]+[KMG]$")] = "512M"
    kill_timeout_ms: Annotated[int, Field(ge=1000, le=120000)] = 10000
    # Applies the pending database migrations, run by `deploy` (once per environment,
    # from the new release's backend folder with its env, before the switch) and by
    # `adapto db migrate`; with `--status` appended it must list them and exit 0
    # (`adapto db status`). None: the backend has no migrations adapto runs.
    migrate: Annotated[str, Field(min_length=1)] | None = None

    @property
    def ports(self) -> list[int]:
        """The consecutive ports of the instances: base_port, base_port + 1, ..."""
        return [self.base_port + i for i in range(self.instances)]

    @property
    def dependency_manifest(self) -> list[str]:
        """Files whose content decides whether dependencies must be reinstalled."""
        if self.dependency_files is not None:
            return self.dependency_files
        if self.kind == "python":
            return ["requirements.txt"]
        return ["package.json", "package-lock.json"]


class RateLimit(Strict):
    """One limit_req zone: a sustained rate and a burst allowance."""

    rate: Annotated[str, Field(pattern=RATE_RE)]
    burst: Annotated[int, Field(ge=1, le=100000)]


class RateLimits(Strict):
    api: RateLimit = RateLimit(rate="20r/s", burst=40)
    auth: RateLimit = RateLimit(rate="5r/m", burst=10)


class Tls(Strict):
    """Where the certificate comes from and what nginx does with it."""

    mode: Literal["letsencrypt", "provided", "self-signed"]
    certificate: AbsPath | None = None
    certificate_key: AbsPath | None = None
    # The issuer chain; OCSP stapling needs it to verify responses.
    trusted_certificate: AbsPath | None = None
    # None: decided by mode. Let's Encrypt stopped running OCSP in 2025, so its
    # certificates carry no responder URL and stapling would only log warnings.
    ocsp_stapling: bool | None = None
    # DNS servers nginx asks for the OCSP responder's address (stapling needs one).
    ocsp_resolver: list[Annotated[str, AfterValidator(_ip_for_nginx)]] = []
    acme_webroot: AbsPath = "/var/www/letsencrypt"
    email: str | None = None
    hsts_max_age: Annotated[int, Field(ge=0)] = 63072000

    @model_validator(mode="after")
    def _provided_needs_paths(self) -> Tls:
        if self.mode == "provided" and not (self.certificate and self.certificate_key):
            raise ValueError(
                "mode 'provided' needs certificate and certificate_key paths"
            )
        if self.ocsp_stapling and self.mode == "self-signed":
            raise ValueError("ocsp_stapling cannot work with a self-signed certificate")
        if self.ocsp_stapling and not self.ocsp_resolver:
            raise ValueError("ocsp_stapling needs ocsp_resolver (DNS servers nginx can ask, "
                             "e.g. [127.0.0.53])")
        return self


class Nginx(Strict):
    """The site nginx serves: names, TLS, limits, where its files and logs live."""

    server_names: Annotated[list[HostName], Field(min_length=1), AfterValidator(_unique)]
    # With several names, the first is canonical and the others redirect to it.
    redirect_aliases: bool = True
    # This site answers requests for unknown names and bare IPs (the server's
    # only site, as in the runbook). Turn off when another site on the same
    # nginx is the default, or nginx refuses two default servers.
    default_server: bool = True
    # Addresses nginx listens on: IPv4, [IPv6], * or {address} (the host's own).
    listen: Annotated[
        list[Annotated[str, AfterValidator(_listen_address)]],
        Field(min_length=1),
        AfterValidator(_distinct_listen),
    ] = ["0.0.0.0", "[::]"]
    http_port: Port = 80
    https_port: Port = 443
    http2: bool = True
    tls: Tls
    control: Literal["systemd", "signal"] = "systemd"
    binary: str = "nginx"
    prefix: AbsPath | None = None
    main_config: AbsPath | None = None
    site_config: AbsPath | None = None
    site_enabled: AbsPath | None = None
    access_log: AbsPath = "/var/log/nginx/access.log"
    error_log: AbsPath = "/var/log/nginx/error.log"
    client_max_body_size: Annotated[str, Field(pattern=SIZE_RE)] = "10m"
    rate_limits: RateLimits = RateLimits()
    websocket_path: Annotated[str, Field(pattern=r"^/[A-Za-z0-9/_.-]*$")] = "/ws"
    upstream_keepalive: Annotated[int, Field(ge=1, le=1024)] = 32

    @model_validator(mode="after")
    def _signal_needs_prefix(self) -> Nginx:
        if self.control == "signal" and not self.prefix:
            raise ValueError("control 'signal' needs a prefix (nginx -p PREFIX)")
        ws = self.websocket_path.rstrip("/") or "/"
        if ws in {"/", "/index.html"} or ws == "/api" or ws.startswith("/api/"):
            raise ValueError(f"websocket_path {self.websocket_path!r} collides with the site's "
                             "own locations (/, /index.html, /api/); use e.g. /ws")
        return self

    @property
    def canonical_name(self) -> str:
        return self.server_names[0]

    @property
    def site_config_path(self) -> str:
        if self.site_config:
            return self.site_config
        return f"/etc/nginx/sites-available/{self.canonical_name}"

    @property
    def site_enabled_path(self) -> str:
        if self.site_enabled:
            return self.site_enabled
        return f"/etc/nginx/sites-enabled/{self.canonical_name}"

    @property
    def main_config_path(self) -> str:
        if self.main_config:
            return self.main_config
        if self.prefix:
            return f"{self.prefix}/conf/nginx.conf"
        return "/etc/nginx/nginx.conf"

    @property
    def certificate_path(self) -> str:
        if self.tls.certificate:
            return self.tls.certificate
        if self.tls.mode == "letsencrypt":
            return f"/etc/letsencrypt/live/{self.canonical_name}/fullchain.pem"
        return f"/etc/ssl/certs/{self.canonical_name}.pem"

    @property
    def certificate_key_path(self) -> str:
        if self.tls.certificate_key:
            return self.tls.certificate_key
        if self.tls.mode == "letsencrypt":
            return f"/etc/letsencrypt/live/{self.canonical_name}/privkey.pem"
        return f"/etc/ssl/private/{self.canonical_name}.key"

    @property
    def trusted_certificate_path(self) -> str | None:
        if self.tls.trusted_certificate:
            return self.tls.trusted_certificate
        if self.tls.mode == "letsencrypt":
            return f"/etc/letsencrypt/live/{self.canonical_name}/chain.pem"
        return None

    @property
    def ocsp_stapling(self) -> bool:
        if self.tls.ocsp_stapling is not None:
            return self.tls.ocsp_stapling
        return (self.tls.mode == "provided" and self.tls.trusted_certificate is not None
                and bool(self.tls.ocsp_resolver))


FIREWALL_RULE_RE = r"^[0-9]{1,5}(:[0-9]{1,5})?(/(tcp|udp))?$"


class Firewall(Strict):
    """ufw rules; SSH is always allowed first so enabling ufw cannot lock us out."""

    # false (sandboxes): adapto never changes this environment's firewall.
    manage: bool = True
    # `adapto deploy` also applies the firewall plan (one step, before the switch).
    apply_on_deploy: bool = False
    allow: list[Annotated[str, Field(pattern=FIREWALL_RULE_RE)]] = ["22/tcp", "80/tcp", "443/tcp"]
    deny: list[Annotated[str, Field(pattern=FIREWALL_RULE_RE)]] = ["3001/tcp"]


class Health(Strict):
    """The runbook's success criteria, as budgets the health check enforces."""

    api_budget_ms: Annotated[int, Field(ge=1)] = 200
    page_budget_ms: Annotated[int, Field(ge=1)] = 2000
    timeout_s: Annotated[float, Field(gt=0, le=300)] = 10.0
    # A deploy waits this long for a restarted instance to answer its health check.
    instance_start_timeout_s: Annotated[float, Field(gt=0, le=600)] = 60.0
    # The secret (named in secrets.names) adapto's probes send as X-Adapto-Probe;
    # nginx's limit_req exempts requests carrying it, so a flood from the probes'
    # own address cannot rate-limit the deploy's health gate into a rollback.
    probe_token: EnvVarName | None = None
    # A CA bundle to verify the site's certificate with (the sandbox's own CA);
    # None: the system's trust store.
    ca_file: AbsPath | None = None
    certificate_warn_days: Annotated[int, Field(ge=0)] = 14
    # Free space under paths.root: below warn is a warning, below fail a failure.
    disk_warn_percent: Annotated[float, Field(ge=0, le=100)] = 15.0
    disk_fail_percent: Annotated[float, Field(ge=0, le=100)] = 5.0


class Secrets(Strict):
    """Secret names only; values come from the process environment or `file`."""

    names: Annotated[list[EnvVarName], AfterValidator(_unique)] = []
    # Relative to inventory.yaml; must stay out of git.
    file: str | None = None


def _http_url(value: str) -> str:
    if not re.match(r"^https?://[^\s/]+", value):
        raise ValueError(f"{value!r} is not an http(s):// URL")
    return value.rstrip("/")


class MonitorAlert(Strict):
    """Where `adapto monitor` sends alerts. Secret *names* only; values come like all secrets."""

    # The channel used when `--alert` is not given (None: alerts only in the log and JSONL).
    channel: Literal["telegram", "webhook"] | None = None
    telegram_token_secret: EnvVarName = "TELEGRAM_BOT_TOKEN"
    telegram_chat_id_secret: EnvVarName = "TELEGRAM_CHAT_ID"
    telegram_api_base: Annotated[str, AfterValidator(_http_url)] = "https://api.telegram.org"
    # The webhook URL: a secret (it often carries a token) or, if not secret, here.
    webhook_url_secret: EnvVarName | None = None
    webhook_url: Annotated[str, AfterValidator(_http_url)] | None = None
    timeout_s: Annotated[float, Field(gt=0, le=120)] = 10.0


class Monitor(Strict):
    """`adapto monitor`: how often it checks, when it alerts (thresholds as in Gatus)."""

    interval_s: Annotated[float, Field(ge=0.2, le=86400)] = 30.0
    failure_threshold: Annotated[int, Field(ge=1, le=1000)] = 3
    success_threshold: Annotated[int, Field(ge=1, le=1000)] = 2
    # One incident (one alert, one resolved message) per host, or per check of a host.
    group: Literal["host", "check"] = "host"
    # A failure this soon after a deploy names that release and how to roll it back.
    deploy_window_s: Annotated[int, Field(ge=0, le=86400)] = 600
    # Where each round is appended; relative to inventory.yaml
    # (default .adapto/monitor/<env>.jsonl beside it).
    results_file: str | None = None
    alert: MonitorAlert = MonitorAlert()
    # The Python on the host that has adapto installed (`adapto monitor install` runs it).
    python: Annotated[str, Field(pattern=r"^[A-Za-z0-9_./+-]+$")] = "python3"


TELEGRAM_UPDATE_TYPES = Literal[
    "message", "edited_message", "channel_post", "edited_channel_post", "business_connection",
    "business_message", "edited_business_message", "deleted_business_messages",
    "message_reaction", "message_reaction_count", "inline_query", "chosen_inline_result",
    "callback_query", "shipping_query", "pre_checkout_query", "purchased_paid_media", "poll",
    "poll_answer", "my_chat_member", "chat_member", "chat_join_request", "chat_boost",
    "removed_chat_boost",
]


class Telegram(Strict):
    """The platform's bot: where its Bot API is and how `adapto telegram webhook` registers it.

    Secret *names* only: the bot token and the webhook's secret token come like all secrets.
    """

    api_base: Annotated[str, AfterValidator(_http_url)] = "https://api.telegram.org"
    token_secret: EnvVarName = "TELEGRAM_BOT_TOKEN"
    # Sent by Telegram as X-Telegram-Bot-Api-Secret-Token; the backend checks it.
    webhook_secret: EnvVarName = "TELEGRAM_WEBHOOK_SECRET"
    # Where nginx passes it to the backend (the URL is https://<canonical name>[:port]<path>).
    webhook_path: Annotated[str, Field(pattern=r"^/[A-Za-z0-9/_.-]*$")] = (
        "/api/telegram/bot/webhook")
    # What the bot reacts to; the backend answers messages only.
    allowed_updates: Annotated[list[TELEGRAM_UPDATE_TYPES], AfterValidator(_unique)] = [
        "message"]
    max_connections: Annotated[int, Field(ge=1, le=100)] | None = None
    timeout_s: Annotated[float, Field(gt=0, le=120)] = 10.0


class Sandbox(Strict):
    """Marks an environment as a local rehearsal made by `adapto sandbox up`."""

    # Per host: sshd config and keys, PM2_HOME, pid files. Usually has {host}.
    dir: AbsPath
    # The environment's PostgreSQL cluster runs on its first host, on that host's own
    # loopback address and this port; null: no cluster (adapto_ops/sandbox_postgres.py).
    postgres_port: Port | None = 5432
    # Its folder (default <dir>/postgres); the postgres user must be able to reach it.
    postgres_dir: AbsPath | None = None


class Environment(Strict):
    """One deployable environment: its hosts and everything they run."""

    description: str = ""
    hosts: Annotated[list[Host], Field(min_length=1)]
    paths: Paths
    frontend: Frontend = Frontend()
    backend: Backend
    nginx: Nginx
    firewall: Firewall = Firewall()
    health: Health = Health()
    secrets: Secrets = Secrets()
    monitor: Monitor = Monitor()
    telegram: Telegram = Telegram()
    sandbox: Sandbox | None = None

    @model_validator(mode="after")
    def _websocket_not_assets(self) -> Environment:
        assets = f"/{self.frontend.assets_dir}"
        ws = self.nginx.websocket_path.rstrip("/")
        if ws == assets or ws.startswith(assets + "/"):
            raise ValueError(f"nginx.websocket_path {self.nginx.websocket_path!r} lies inside "
                             f"the assets location {assets}/; use e.g. /ws")
        return self

    def host(self, name: str) -> Host:
        for host in self.hosts:
            if host.name == name:
                return host
        known = ", ".join(h.name for h in self.hosts)
        raise KeyError(f"no host {name!r} (hosts: {known})")

    def hosts_with(self, role: str) -> list[Host]:
        return [h for h in self.hosts if role in h.roles]


class Inventory(Strict):
    """The whole inventory.yaml."""

    version: Literal[1] = 1
    project: Name
    environments: Annotated[dict[Name, Environment], Field(min_length=1)]
