"""Rendering semantics: what the nginx, PM2, ufw, env and logrotate files say.

Environments are the repository's inventory.yaml plus programmatic variations
(instances, TLS modes, server names, backend hosts). The nginx site is parsed
with crossplane and walked as a tree; the PM2 ecosystem is loaded by node; the
real tools (nginx -t, gixy, node, ufw --dry-run, logrotate) judge the output
in the tests marked `tools`.
"""

from __future__ import annotations

import copy
import dataclasses
import json
import os
import shutil
import stat
import subprocess
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import crossplane
import pytest

from adapto_ops.inventory import Environment, load_inventory
from adapto_ops.inventory.secrets import SecretValues, dotenv_quote, parse_dotenv
from adapto_ops.render.checks import (
    check_env,
    check_firewall,
    check_logrotate,
    check_nginx,
    check_pm2,
)
from adapto_ops.render.configs import (
    KINDS,
    RenderedFile,
    Target,
    render_env,
    render_firewall,
    render_logrotate,
    render_nginx,
    render_pm2,
    render_target,
)

REPO = Path(__file__).resolve().parent.parent
LOADED = load_inventory(REPO / "inventory.yaml")
PROJECT = LOADED.inventory.project

# Mozilla "intermediate" (guideline 5.7), ECDHE suites.
INTERMEDIATE_CIPHERS = (
    "ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256:"
    "ECDHE-ECDSA-AES256-GCM-SHA384:ECDHE-RSA-AES256-GCM-SHA384:"
    "ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-CHACHA20-POLY1305"
)
SECURITY_HEADERS = (
    "Strict-Transport-Security",
    "X-Content-Type-Options",
    "X-Frame-Options",
    "Referrer-Policy",
    "Permissions-Policy",
)
ACME_LOCATION = ("^~", "/.well-known/acme-challenge/")


# --- variants -----------------------------------------------------------------------------


@dataclass(frozen=True)
class Variant:
    id: str
    env_name: str
    mutate: Callable[[dict[str, Any]], None] = lambda data: None
    stapling: bool = False
    known_gixy: tuple[str, ...] = field(default=())

    def environment(self) -> Environment:
        data = copy.deepcopy(LOADED.environment(self.env_name).model_dump())
        self.mutate(data)
        return Environment.model_validate(data)

    def target(self, host_index: int | None = None) -> Target:
        env = self.environment()
        host = env.hosts[host_index] if host_index is not None else env.hosts_with("web")[0]
        return Target.of(PROJECT, self.env_name, env, host)


def _tls(mode: str, **extra: Any) -> Callable[[dict[str, Any]], None]:
    def mutate(data: dict[str, Any]) -> None:
        data["nginx"]["tls"] = {"mode": mode, **extra}

    return mutate


def _set(section: str, **values: Any) -> Callable[[dict[str, Any]], None]:
    def mutate(data: dict[str, Any]) -> None:
        data[section].update(values)

    return mutate


def _both(*mutations: Callable[[dict[str, Any]], None]) -> Callable[[dict[str, Any]], None]:
    def mutate(data: dict[str, Any]) -> None:
        for m in mutations:
            m(data)

    return mutate


def _two_backend_hosts(data: dict[str, Any]) -> None:
    data["hosts"][0]["private_address"] = "10.0.0.1"
    data["hosts"].append(
        {"name": "api2", "address": "89.23.97.46", "roles": ["backend"],
         "private_address": "10.0.0.2"}
    )


def _second_sandbox_host(data: dict[str, Any]) -> None:
    data["hosts"].append(dict(data["hosts"][0], name="sandbox2", address="127.0.0.3"))


PROVIDED = {"certificate": "/etc/ssl/certs/site.pem",
            "certificate_key": "/etc/ssl/private/site.key"}
DEFAULT_SERVER = "default_server_flag"
NO_RESOLVER = "ssl_stapling_without_resolver"
RESOLVER = ["127.0.0.53"]

VARIANTS = [
    Variant("production", "production"),
    Variant("production-1-instance", "production", _set("backend", instances=1)),
    Variant("production-3-instances", "production", _set("backend", instances=3)),
    Variant("production-provided-chain", "production",
            _tls("provided", **PROVIDED, trusted_certificate="/etc/ssl/certs/chain.pem",
                 ocsp_resolver=RESOLVER),
            stapling=True),
    # An issuer chain alone does not turn stapling on: nginx also needs a resolver.
    Variant("production-provided-chain-no-resolver", "production",
            _tls("provided", **PROVIDED, trusted_certificate="/etc/ssl/certs/chain.pem")),
    Variant("production-provided", "production", _tls("provided", **PROVIDED)),
    Variant("production-self-signed", "production", _tls("self-signed")),
    Variant("production-one-name", "production", _set("nginx", server_names=["adaptoai.ru"])),
    Variant("production-no-alias-redirect", "production", _set("nginx", redirect_aliases=False)),
    # Another site on the same nginx is the default: the alias and main HTTPS servers
    # then share their sockets with no default among them, which gixy points out.
    Variant("production-not-default-server", "production", _set("nginx", default_server=False),
            known_gixy=(DEFAULT_SERVER,)),
    Variant("production-two-backend-hosts", "production",
            _both(_two_backend_hosts, _set("backend", instances=3))),
    Variant("production-custom-limits", "production",
            _set("nginx", client_max_body_size="64m", https_port=8443, http2=False,
                 upstream_keepalive=8,
                 rate_limits={"api": {"rate": "300r/m", "burst": 5},
                              "auth": {"rate": "1r/s", "burst": 1}},
                 tls={"mode": "self-signed", "hsts_max_age": 300})),
    Variant("sandbox", "sandbox"),
    Variant("sandbox-two-hosts", "sandbox", _second_sandbox_host),
    Variant("sandbox-letsencrypt-names", "sandbox",
            _both(_set("nginx", server_names=["sandbox.adapto.test", "www.sandbox.adapto.test",
                                              "old.adapto.test"], http_port=80),
                  _tls("letsencrypt"))),
]
VARIANT_IDS = [v.id for v in VARIANTS]


# --- nginx tree helpers -----------------------------------------------------------------------


def parse_site(text: str, directory: Path) -> list[dict[str, Any]]:
    site = directory / "site.conf"
    site.write_text(text, encoding="utf-8")
    payload = crossplane.parse(
        str(site), check_ctx=False, check_args=False, single=True, comments=False
    )
    assert payload["status"] == "ok", payload["errors"]
    return payload["config"][0]["parsed"]


def find(block: list[dict[str, Any]], name: str) -> list[dict[str, Any]]:
    return [d for d in block if d["directive"] == name]


def one(block: list[dict[str, Any]], name: str) -> dict[str, Any]:
    found = find(block, name)
    assert len(found) == 1, f"expected one {name}, found {len(found)}"
    return found[0]


def args(block: list[dict[str, Any]], name: str) -> list[str]:
    return one(block, name)["args"]


def walk(block: list[dict[str, Any]]) -> Iterator[dict[str, Any]]:
    for d in block:
        yield d
        yield from walk(d.get("block", []))


def headers(block: list[dict[str, Any]]) -> dict[str, list[str]]:
    return {d["args"][0]: d["args"][1:] for d in find(block, "add_header")}


def proxy_headers(block: list[dict[str, Any]]) -> dict[str, str]:
    return {d["args"][0]: d["args"][1] for d in find(block, "proxy_set_header")}


def locations(server: dict[str, Any]) -> dict[tuple[str, ...], list[dict[str, Any]]]:
    found = {tuple(d["args"]): d["block"] for d in find(server["block"], "location")}
    assert len(found) == len(find(server["block"], "location")), "duplicate location"
    return found


def is_https(server: dict[str, Any]) -> bool:
    return any("ssl" in d["args"][1:] for d in find(server["block"], "listen"))


def seconds(value: str) -> float:
    units = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400}
    for suffix in sorted(units, key=len, reverse=True):
        if value.endswith(suffix):
            return float(value[: -len(suffix)]) * units[suffix]
    return float(value)


def per_second(rate: str) -> float:
    number, unit = rate.split("r/")
    return float(number) / (60 if unit == "m" else 1)


@dataclass
class Site:
    variant: Variant
    target: Target
    env: Environment
    tree: list[dict[str, Any]]

    @property
    def servers(self) -> list[dict[str, Any]]:
        return find(self.tree, "server")

    @property
    def http_servers(self) -> list[dict[str, Any]]:
        return [s for s in self.servers if not is_https(s)]

    @property
    def https_servers(self) -> list[dict[str, Any]]:
        return [s for s in self.servers if is_https(s)]

    @property
    def main(self) -> dict[str, Any]:
        """The HTTPS server that serves the app (the one with a root)."""
        mains = [s for s in self.https_servers if find(s["block"], "root")]
        assert len(mains) == 1
        return mains[0]

    @property
    def aliases(self) -> list[str]:
        nginx = self.env.nginx
        return nginx.server_names[1:] if nginx.redirect_aliases else []

    @property
    def default_flag(self) -> list[str]:
        """What ends the listen directives of the servers that are the default."""
        return ["default_server"] if self.env.nginx.default_server else []

    @property
    def port_suffix(self) -> str:
        port = self.env.nginx.https_port
        return "" if port == 443 else f":{port}"


@pytest.fixture(params=VARIANTS, ids=VARIANT_IDS)
def site(request: pytest.FixtureRequest, tmp_path: Path) -> Site:
    variant: Variant = request.param
    target = variant.target()
    text = render_nginx(target).text
    return Site(variant, target, target.env, parse_site(text, tmp_path))


# --- nginx semantics ------------------------------------------------------------------------------


def test_http_server_answers_acme_and_redirects_everything_else(site: Site) -> None:
    nginx = site.env.nginx
    [http] = site.http_servers
    listens = [d["args"] for d in find(http["block"], "listen")]
    # The site answers plain HTTP for unknown names too (unless told otherwise).
    assert listens == [
        [f"{address}:{nginx.http_port}", *site.default_flag] for address in nginx.listen
    ]
    assert args(http["block"], "server_name") == nginx.server_names
    locs = locations(http)
    assert ACME_LOCATION in locs
    assert args(locs[ACME_LOCATION], "root") == [nginx.tls.acme_webroot]
    others = {k: v for k, v in locs.items() if k != ACME_LOCATION}
    assert others, "the HTTP server must redirect the rest"
    target = (f"https://{nginx.canonical_name}" if site.aliases else "https://$host")
    for block in others.values():
        assert args(block, "return") == ["301", f"{target}{site.port_suffix}$request_uri"]
        assert not find(block, "proxy_pass") and not find(block, "root")
    # Nothing is served over plain HTTP outside the challenge folder.
    assert not find(http["block"], "root")
    assert not any(d["directive"] == "proxy_pass" for d in walk(http["block"]))


def test_https_servers_use_intermediate_tls(site: Site) -> None:
    nginx = site.env.nginx
    assert site.https_servers
    for server in site.https_servers:
        block = server["block"]
        listens = [d["args"] for d in find(block, "listen")]
        expected_flags = ["ssl", "http2"] if nginx.http2 else ["ssl"]
        # Only the server of the app is the default; the alias redirect never is.
        if server is site.main:
            expected_flags += site.default_flag
        assert listens == [
            [f"{a}:{nginx.https_port}", *expected_flags] for a in nginx.listen
        ]
        assert args(block, "ssl_protocols") == ["TLSv1.2", "TLSv1.3"]
        assert args(block, "ssl_ciphers") == [INTERMEDIATE_CIPHERS]
        cache = args(block, "ssl_session_cache")
        assert len(cache) == 1 and cache[0].startswith("shared:")
        assert args(block, "ssl_certificate") == [nginx.certificate_path]
        assert args(block, "ssl_certificate_key") == [nginx.certificate_key_path]
        assert args(block, "server_tokens") == ["off"]


def test_ocsp_stapling_only_when_expected(site: Site) -> None:
    for server in site.https_servers:
        block = server["block"]
        stapling = [d["args"] for d in find(block, "ssl_stapling")]
        if site.variant.stapling:
            assert stapling == [["on"]]
            assert args(block, "ssl_stapling_verify") == ["on"]
            assert args(block, "ssl_trusted_certificate") == [
                site.env.nginx.tls.trusted_certificate
            ]
            # nginx must be able to look the OCSP responder up.
            assert site.env.nginx.tls.ocsp_resolver
            assert args(block, "resolver") == [*site.env.nginx.tls.ocsp_resolver, "valid=300s"]
            assert args(block, "resolver_timeout") == ["5s"]
        else:
            assert stapling in ([], [["off"]])
            assert not find(block, "ssl_stapling_verify")
            assert not find(block, "resolver")


def test_security_headers_wherever_headers_are_set(site: Site) -> None:
    hsts = f"max-age={site.env.nginx.tls.hsts_max_age}"
    for server in site.https_servers:
        server_headers = headers(server["block"])
        assert set(SECURITY_HEADERS) <= set(server_headers)
        assert server_headers["Strict-Transport-Security"] == [hsts, "always"]
        assert server_headers["X-Content-Type-Options"][0] == "nosniff"
    for server in site.servers:  # plain HTTP too: any location with its own headers
        for directive in walk(server["block"]):
            if directive["directive"] != "location":
                continue
            own = headers(directive["block"])
            if own:  # nginx drops every inherited add_header here
                missing = set(SECURITY_HEADERS) - set(own)
                assert not missing, f"location {directive['args']} lacks {missing}"
                assert own["Strict-Transport-Security"] == [hsts, "always"]


def test_spa_static_files(site: Site) -> None:
    env = site.env
    block = site.main["block"]
    assert args(block, "root") == [f"{env.paths.root}/current/dist"]
    assert args(block, "gzip") == ["on"]
    assert args(block, "client_max_body_size") == [env.nginx.client_max_body_size]
    locs = locations(site.main)
    assert args(locs[("/",)], "try_files") == ["$uri", "$uri/", "/index.html"]
    index = headers(locs[("=", "/index.html")])
    assert index["Cache-Control"][0] == "no-cache"
    assets = headers(locs[("^~", f"/{env.frontend.assets_dir}/")])
    cache_control = assets["Cache-Control"][0]
    assert "immutable" in cache_control
    assert "max-age=31536000" in [part.strip() for part in cache_control.split(",")]


def _zones(tree: list[dict[str, Any]]) -> dict[str, str]:
    zones = {}
    for d in find(tree, "limit_req_zone"):
        options = dict(a.split("=", 1) for a in d["args"] if "=" in a)
        zones[options["zone"].split(":")[0]] = options["rate"]
    return zones


def test_api_locations_proxy_with_rate_limits(site: Site) -> None:
    nginx = site.env.nginx
    upstream = one(site.tree, "upstream")["args"][0]
    zones = _zones(site.tree)
    locs = locations(site.main)
    used = {}
    for path, limit in (("/api/", nginx.rate_limits.api), ("/api/auth/", nginx.rate_limits.auth)):
        block = locs[(path,)]
        assert args(block, "proxy_pass") == [f"http://{upstream}"]
        assert args(block, "proxy_http_version") == ["1.1"]
        sent = proxy_headers(block)
        assert sent["X-Forwarded-For"] == "$proxy_add_x_forwarded_for"
        assert sent["X-Forwarded-Proto"] == "$scheme"
        assert sent["X-Real-IP"] == "$remote_addr"
        assert sent["Host"] == "$host"
        assert sent["Connection"] == ""  # keepalive to the upstream
        next_upstream = args(block, "proxy_next_upstream")
        assert {"error", "timeout"} <= set(next_upstream)
        options = dict(a.split("=", 1) for a in args(block, "limit_req") if "=" in a)
        assert options["zone"] in zones
        assert zones[options["zone"]] == limit.rate
        assert int(options["burst"]) == limit.burst
        assert args(block, "limit_req_status") == ["429"]
        used[path] = options["zone"]
    assert used["/api/"] != used["/api/auth/"]
    assert per_second(zones[used["/api/auth/"]]) < per_second(zones[used["/api/"]])


def test_upstream_lists_every_backend_instance(site: Site) -> None:
    env = site.env
    upstream = one(site.tree, "upstream")
    servers = [d["args"][0] for d in find(upstream["block"], "server")]
    backend_hosts = env.hosts_with("backend")
    assert len(servers) == env.backend.instances * len(backend_hosts)
    expected = [
        f"{host.private_address}:{env.backend.base_port + i}"
        for host in backend_hosts
        for i in range(env.backend.instances)
    ]
    assert servers == expected
    for host in backend_hosts:
        ports = [int(s.rsplit(":", 1)[1]) for s in servers
                 if s.rsplit(":", 1)[0] == host.private_address]
        assert ports == list(range(ports[0], ports[0] + env.backend.instances))
    assert len(set(servers)) == len(servers)
    keepalive = args(upstream["block"], "keepalive")
    assert keepalive == [str(env.nginx.upstream_keepalive)] and int(keepalive[0]) > 0


def test_upstream_addresses_for_two_sandbox_hosts(tmp_path: Path) -> None:
    variant = next(v for v in VARIANTS if v.id == "sandbox-two-hosts")
    for index, address in ((0, "127.0.0.2"), (1, "127.0.0.3")):
        target = variant.target(index)
        tree = parse_site(render_nginx(target).text, tmp_path)
        servers = [d["args"][0] for d in find(one(tree, "upstream")["block"], "server")]
        assert servers == [f"{a}:{p}" for a in ("127.0.0.2", "127.0.0.3") for p in (3001, 3002)]
        for server in find(tree, "server"):
            listens = {d["args"][0].rsplit(":", 1)[0] for d in find(server["block"], "listen")}
            assert listens == {address}


def test_websocket_location(site: Site) -> None:
    env = site.env
    upstream = one(site.tree, "upstream")["args"][0]
    block = locations(site.main)[(env.nginx.websocket_path,)]
    assert args(block, "proxy_pass") == [f"http://{upstream}"]
    assert args(block, "proxy_http_version") == ["1.1"]
    sent = proxy_headers(block)
    assert sent["Upgrade"] == "$http_upgrade"
    maps = {d["args"][1]: d for d in find(site.tree, "map") if d["args"][0] == "$http_upgrade"}
    assert sent["Connection"] in maps
    mapping = {d["directive"]: d["args"] for d in maps[sent["Connection"]]["block"]}
    assert mapping["default"] == ["upgrade"]
    assert seconds(args(block, "proxy_read_timeout")[0]) >= 3600


def test_alias_names_redirect_to_the_canonical_name(site: Site) -> None:
    nginx = site.env.nginx
    by_names = {tuple(args(s["block"], "server_name")): s for s in site.https_servers}
    if site.aliases:
        assert set(by_names) == {tuple(site.aliases), (nginx.canonical_name,)}
        alias_server = by_names[tuple(site.aliases)]
        # After the app's server: nginx takes the first server on a socket as its default.
        assert site.servers.index(alias_server) > site.servers.index(site.main)
        locs = locations(alias_server)
        assert list(locs) == [("/",)]
        assert args(locs[("/",)], "return") == [
            "301", f"https://{nginx.canonical_name}{site.port_suffix}$request_uri"
        ]
        assert not find(alias_server["block"], "root")
    else:
        assert list(by_names) == [tuple(nginx.server_names)]


def test_default_server_marks_the_http_and_main_https_servers_only(site: Site) -> None:
    flagged = [s for s in site.servers
               if any("default_server" in d["args"] for d in find(s["block"], "listen"))]
    if site.env.nginx.default_server:
        assert flagged == [*site.http_servers, site.main]
        for server in flagged:  # every socket of those servers, not just one
            assert all(d["args"][-1] == "default_server" for d in find(server["block"], "listen"))
    else:
        assert flagged == []


def test_default_server_off_leaves_no_default_server_anywhere(tmp_path: Path) -> None:
    variant = next(v for v in VARIANTS if v.id == "production-not-default-server")
    env = variant.environment()
    assert env.nginx.default_server is False
    assert VARIANTS[0].environment().nginx.default_server is True
    text = render_nginx(variant.target()).text
    assert "default_server" not in text
    tree = parse_site(text, tmp_path)
    listens = [d for s in find(tree, "server") for d in find(s["block"], "listen")]
    assert listens and not any("default_server" in d["args"] for d in listens)


def test_http_zone_names_carry_the_project_prefix(site: Site) -> None:
    prefix = site.target.prefix
    assert prefix == "ai_platform"
    for name in _zones(site.tree):
        assert name.startswith(f"{prefix}_")
    assert one(site.tree, "upstream")["args"][0].startswith(f"{prefix}_")
    assert find(site.tree, "log_format")[0]["args"][0].startswith(f"{prefix}_")


# --- PM2 ------------------------------------------------------------------------------------------

NODE = shutil.which("node")
needs_node = pytest.mark.skipif(NODE is None, reason="node is not installed")

LOAD_ECOSYSTEM = (
    "const config = require(process.argv[1]);"
    "process.stdout.write(JSON.stringify(config));"
)


def load_ecosystem(file: RenderedFile, directory: Path) -> dict[str, Any]:
    path = directory / "ecosystem.config.js"
    path.write_text(file.text, encoding="utf-8")
    assert NODE is not None
    proc = subprocess.run([NODE, "-e", LOAD_ECOSYSTEM, str(path)], capture_output=True,
                          text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)


@pytest.mark.tools
@needs_node
@pytest.mark.parametrize(
    "variant",
    [v for v in VARIANTS if v.id in {"production", "production-1-instance",
                                     "production-3-instances", "sandbox"}],
    ids=lambda v: v.id,
)
def test_pm2_ecosystem_loaded_by_node(variant: Variant, tmp_path: Path) -> None:
    target = variant.target()
    env = target.env
    backend = env.backend
    root = env.paths.root
    apps = load_ecosystem(render_pm2(target), tmp_path)["apps"]
    ports = [int(app["env"]["PORT"]) for app in apps]
    assert ports == list(range(backend.base_port, backend.base_port + backend.instances))
    assert [app["name"] for app in apps] == [f"{backend.name}-{p}" for p in ports]
    for app, port in zip(apps, ports, strict=True):
        assert app["namespace"] == backend.name
        assert app["cwd"] == f"{root}/current/backend"
        assert app["kill_timeout"] == backend.kill_timeout_ms
        assert app["max_memory_restart"] == backend.memory_limit
        assert isinstance(app["exp_backoff_restart_delay"], int)
        assert app["exp_backoff_restart_delay"] > 0
        assert app["interpreter"] == "none"
        assert app["instances"] == 1 and app["exec_mode"] == "fork"
        for key in ("out_file", "error_file"):
            assert app[key].startswith(f"{root}/shared/logs/")
            assert app["name"] in app[key]
        assert app["out_file"] != app["error_file"]
        for name, value in backend.env.items():
            assert app["env"][name] == value
        assert app["env"]["HOST"] == backend.bind
        if backend.kind == "python":
            assert str(port) in app["args"]
            assert app["script"].startswith(f"{root}/current/backend/")
            assert "{port}" not in json.dumps(app) and "{bind}" not in json.dumps(app)


@pytest.mark.tools
@needs_node
def test_pm2_release_dir_pins_cwd(tmp_path: Path) -> None:
    target = VARIANTS[0].target()
    release = f"{target.env.paths.root}/releases/20250101T000000Z"
    file = render_pm2(target, release)
    assert file.path == f"{release}/ecosystem.config.js"
    apps = load_ecosystem(file, tmp_path)["apps"]
    assert {app["cwd"] for app in apps} == {f"{release}/backend"}


TRICKY_SECRET = 'he said "hi" \\ C:\\path\\n\nsecond line\tand a tab'
# Every character str.splitlines() ends a line at, \r\n too: one value, not several lines.
LINE_BOUNDARY_SECRET = "a\rb\x0bc\x0cd\x1ce\x1df\x1eg\x85h\u2028i\u2029j\r\nk\\r"


@pytest.mark.tools
@needs_node
def test_pm2_reads_the_env_file_exactly(tmp_path: Path) -> None:
    def at_tmp(data: dict[str, Any]) -> None:
        data["paths"]["root"] = str(tmp_path / "app")

    target = Variant("production-at-tmp", "production", at_tmp).target()
    secrets = SecretValues(values={
        "SUPABASE_ANON_KEY": TRICKY_SECRET,
        "NEXT_PUBLIC_SUPABASE_ANON_KEY": "plain-safe.value",
        "SUPABASE_SERVICE_ROLE_KEY": "'single quoted looking'",
        "TELEGRAM_BOT_TOKEN": "123:abc$def#ghi",
        "GIGACHAT_AUTH_KEY": " padded ",
        "EXTRA_MULTI_BOUNDARY_KEY": LINE_BOUNDARY_SECRET,
    })
    env_file = render_env(target, secrets, "secrets.env")
    assert parse_dotenv(env_file.text)["EXTRA_MULTI_BOUNDARY_KEY"] == LINE_BOUNDARY_SECRET
    path = Path(target.layout.env_file)
    assert path.parent == tmp_path / "app" / "shared"
    path.parent.mkdir(parents=True)
    # Lines PM2 must also cope with: export prefix, single quotes, comments, a stray PORT.
    extra = "export EXPORTED=yes\nSINGLE='raw \\n stays'\n# COMMENTED=no\nPORT=9999\n"
    raw = "KEY_ENCODED=" + dotenv_quote('a "b" \\ c\nd') + "\n"
    path.write_text(env_file.text + extra + raw, encoding="utf-8")

    apps = load_ecosystem(render_pm2(target), tmp_path)["apps"]
    assert len(apps) == target.env.backend.instances
    for app, port in zip(apps, target.env.backend.ports, strict=True):
        env = app["env"]
        for name, value in secrets.values.items():
            assert env[name] == value, name
        for name, value in target.env.backend.env.items():
            assert env[name] == value
        assert env["EXPORTED"] == "yes"
        assert env["SINGLE"] == "raw \\n stays"
        assert env["KEY_ENCODED"] == 'a "b" \\ c\nd'
        assert "COMMENTED" not in env
        assert env["PORT"] == str(port)  # the instance's port wins over the file


@pytest.mark.tools
@needs_node
def test_pm2_missing_env_file_is_not_an_error(tmp_path: Path) -> None:
    def at_tmp(data: dict[str, Any]) -> None:
        data["paths"]["root"] = str(tmp_path / "nothing-here")

    target = Variant("at-tmp", "production", at_tmp).target()
    apps = load_ecosystem(render_pm2(target), tmp_path)["apps"]
    assert apps and all("SUPABASE_ANON_KEY" not in a["env"] for a in apps)


# --- firewall, env, logrotate ---------------------------------------------------------------------


@pytest.mark.parametrize(
    "variant",
    [VARIANTS[0], next(v for v in VARIANTS if v.id == "sandbox"),
     Variant("production-ssh-2222", "production",
             lambda d: d["hosts"][0].update(port=2222))],
    ids=lambda v: v.id,
)
def test_firewall_keeps_ssh_open_first(variant: Variant) -> None:
    target = variant.target()
    file = render_firewall(target)
    assert file.mode == 0o755
    lines = file.text.splitlines()
    assert lines[0] == "#!/bin/sh"
    assert "set -e" in lines
    commands = [line for line in lines if line.startswith("ufw ")]
    assert commands[0].split()[:3] == ["ufw", "allow", f"{target.host.port}/tcp"]
    assert commands[-1] == "ufw --force enable"
    assert commands.count("ufw --force enable") == 1
    assert "ufw default deny incoming" in commands
    for rule in target.env.firewall.deny:
        assert f"ufw deny {rule} comment 'adapto: deny'" in commands
    allowed = {c.split()[2] for c in commands if c.startswith("ufw allow ")}
    assert set(target.env.firewall.allow) | {f"{target.host.port}/tcp"} == allowed


SECRETS = {
    "SUPABASE_ANON_KEY": "anon-7f3a9c-VALUE",
    "NEXT_PUBLIC_SUPABASE_ANON_KEY": "public anon with space",
    "SUPABASE_SERVICE_ROLE_KEY": 'service"role\\key',
    "TELEGRAM_BOT_TOKEN": "42:telegram-TOKEN-xyz",
}


def test_env_file_masks_secrets_on_display() -> None:
    target = VARIANTS[0].target()
    names = target.env.secrets.names
    secrets = SecretValues(values=SECRETS, missing=[n for n in names if n not in SECRETS])
    file = render_env(target, secrets, "/x/.secrets/production.env")
    assert file.mode == 0o600
    assert file.path == f"{target.env.paths.root}/shared/.env"
    for value in SECRETS.values():
        assert value not in file.shown
        assert dotenv_quote(value) not in file.shown
    for name, value in SECRETS.items():
        assert f"{name}={dotenv_quote(value)}" in file.text.splitlines()
    parsed = parse_dotenv(file.text)
    assert {k: parsed[k] for k in SECRETS} == SECRETS
    # Plain values are not secrets: shown as they are.
    for name, value in target.env.backend.env.items():
        assert f"{name}={dotenv_quote(value)}" in file.shown.splitlines()
        assert parsed[name] == value
    # The missing secret is named (never valued) in both versions.
    assert "GIGACHAT_AUTH_KEY" not in parsed
    assert "# GIGACHAT_AUTH_KEY is not set" in file.text
    assert "# GIGACHAT_AUTH_KEY is not set" in file.shown


def test_env_plain_value_wins_over_secret_of_same_name() -> None:
    target = VARIANTS[0].target()
    secrets = SecretValues(values={"NODE_ENV": "from-secret", **SECRETS})
    parsed = parse_dotenv(render_env(target, secrets, "x").text)
    assert parsed["NODE_ENV"] == "production"


def test_logrotate_rotates_the_pm2_logs() -> None:
    for variant in (VARIANTS[0], next(v for v in VARIANTS if v.id == "sandbox")):
        target = variant.target()
        file = render_logrotate(target)
        expected = target.env.paths.logrotate_config or f"/etc/logrotate.d/{PROJECT}"
        assert file.path == expected
        lines = [line.strip() for line in file.text.splitlines()]
        assert f"{target.env.paths.root}/shared/logs/*.log {{" in lines
        assert f"su {target.host.user} {target.host.user}" in lines
        assert "copytruncate" in lines


def test_render_target_gives_every_kind_in_order() -> None:
    target = VARIANTS[0].target()
    files = render_target(target, KINDS, SecretValues(values=SECRETS), "x")
    assert [f.kind for f in files] == list(KINDS)
    assert [f.kind for f in render_target(target, ["pm2"], SecretValues(), "x")] == ["pm2"]
    for file in files:
        assert file.path.startswith("/")
        assert "{host}" not in file.text and "{address}" not in file.text


# --- the real tools -------------------------------------------------------------------------------

NGINX = shutil.which("nginx") or shutil.which("nginx", path="/usr/sbin:/sbin")
needs_nginx = pytest.mark.skipif(NGINX is None, reason="nginx is not installed")
GIXY = shutil.which("gixy")
UFW = shutil.which("ufw") or shutil.which("ufw", path="/usr/sbin:/sbin")
LOGROTATE = shutil.which("logrotate") or shutil.which("logrotate", path="/usr/sbin:/sbin")

EVERY_HOST = [
    (env_name, host.name)
    for env_name, env in LOADED.inventory.environments.items()
    for host in env.hosts_with("web")
]


def _stapling_warning(line: str) -> bool:
    # The throw-away certificate the check substitutes has no OCSP responder URL.
    return '"ssl_stapling" ignored' in line


@pytest.mark.tools
@needs_nginx
@pytest.mark.timeout(120)
@pytest.mark.parametrize(("env_name", "host_name"), EVERY_HOST)
def test_nginx_accepts_every_inventory_environment(env_name: str, host_name: str) -> None:
    env = LOADED.environment(env_name)
    target = Target.of(PROJECT, env_name, env, env.host(host_name))
    result = check_nginx(render_nginx(target), target)
    assert result.ok, result.output
    assert "\n" not in result.summary
    assert not [w for w in result.warnings if not _stapling_warning(w)], result.warnings


@pytest.mark.tools
@needs_nginx
@pytest.mark.timeout(120)
@pytest.mark.parametrize("variant", VARIANTS, ids=VARIANT_IDS)
def test_nginx_accepts_every_variant(variant: Variant) -> None:
    env = variant.environment()
    for host in env.hosts_with("web"):
        target = Target.of(PROJECT, variant.env_name, env, host)
        result = check_nginx(render_nginx(target), target)
        assert result.ok, result.output
        assert not [w for w in result.warnings if not _stapling_warning(w)], result.warnings


@pytest.mark.tools
@needs_nginx
@pytest.mark.parametrize(
    ("old", "new", "says"),
    [
        ("proxy_pass ", "proxy_passs ", 'unknown directive "proxy_passs"'),
        ("    keepalive 32;\n", "    keepalive 32\n", ""),
        ("ssl_protocols TLSv1.2 TLSv1.3;", "ssl_protocols TLSv1.2 TLSv9;", "TLSv9"),
        ("location /api/ {", "location /api/ {{", ""),
    ],
    ids=["typo", "missing-semicolon", "bad-argument", "unbalanced-brace"],
)
def test_nginx_rejects_broken_output(old: str, new: str, says: str) -> None:
    target = VARIANTS[0].target()
    file = render_nginx(target)
    assert old in file.text
    broken = dataclasses.replace(file, text=file.text.replace(old, new, 1))
    result = check_nginx(broken, target)
    assert not result.ok
    assert "\n" not in result.summary
    assert result.summary.startswith(f"nginx -t rejected {file.path}: ")
    assert says in result.summary
    assert "[emerg]" in result.summary


def gixy_issues(text: str, directory: Path) -> list[dict[str, Any]]:
    site = directory / "site.conf"
    site.write_text(text, encoding="utf-8")
    # The smallest nginx.conf a distribution ships; the site is what adapto renders.
    main = directory / "nginx.conf"
    main.write_text(
        f"worker_processes auto;\nevents {{}}\nhttp {{\n    include {site};\n}}\n",
        encoding="utf-8",
    )
    assert GIXY is not None
    proc = subprocess.run([GIXY, "-f", "json", str(main)], capture_output=True, text=True,
                          timeout=120)
    assert proc.stdout.strip(), proc.stderr
    issues = json.loads(proc.stdout)
    # gixy exits 1 exactly when it found something.
    assert (proc.returncode != 0) == bool(issues), proc.stderr
    return issues


@pytest.mark.tools
@pytest.mark.skipif(GIXY is None, reason="gixy is not installed")
@pytest.mark.timeout(120)
@pytest.mark.parametrize("variant", VARIANTS, ids=VARIANT_IDS)
def test_gixy_finds_no_unknown_issues(variant: Variant, tmp_path: Path) -> None:
    issues = gixy_issues(render_nginx(variant.target()).text, tmp_path)
    plugins = {issue["plugin"] for issue in issues}
    unexpected = plugins - set(variant.known_gixy)
    assert not unexpected, json.dumps(issues, indent=2)
    if plugins:
        pytest.xfail(f"known product findings: {sorted(plugins)}")


@pytest.mark.tools
@pytest.mark.skipif(GIXY is None, reason="gixy is not installed")
def test_gixy_alias_servers_name_a_default_server(tmp_path: Path) -> None:
    target = VARIANTS[0].target()
    assert target.env.nginx.server_names[1:] and target.env.nginx.redirect_aliases
    issues = gixy_issues(render_nginx(target).text, tmp_path)
    assert DEFAULT_SERVER not in {i["plugin"] for i in issues}


@pytest.mark.tools
@pytest.mark.skipif(GIXY is None, reason="gixy is not installed")
def test_gixy_stapling_has_a_resolver(tmp_path: Path) -> None:
    variant = next(v for v in VARIANTS if v.stapling)
    text = render_nginx(variant.target()).text
    assert "ssl_stapling on;" in text  # the check below is not vacuous
    issues = gixy_issues(text, tmp_path)
    assert NO_RESOLVER not in {i["plugin"] for i in issues}


@pytest.mark.tools
@pytest.mark.skipif(GIXY is None, reason="gixy is not installed")
def test_gixy_sees_a_planted_problem(tmp_path: Path) -> None:
    """The gixy harness is not blind: a host-header-forging proxy is reported."""
    text = render_nginx(next(v for v in VARIANTS if v.id == "sandbox").target()).text
    text = text.replace("proxy_set_header Host $host;", "proxy_set_header Host $http_host;", 1)
    assert "host_spoofing" in {i["plugin"] for i in gixy_issues(text, tmp_path)}


def _corrupt(file: RenderedFile, old: str, new: str) -> RenderedFile:
    assert old in file.text, old
    return dataclasses.replace(file, text=file.text.replace(old, new, 1))


CHECK_CASES = [
    pytest.param("pm2", check_pm2, NODE, "module.exports = {", "module.exports = {{",
                 "node cannot load", id="pm2-syntax"),
    pytest.param("pm2", check_pm2, NODE, "module.exports = {\n  apps: [",
                 "module.exports = {\n  apps: [] || [", "node cannot load", id="pm2-no-apps"),
    pytest.param("pm2", check_pm2, NODE, "      cwd: ", "      cwd: '' && ",
                 "node cannot load", id="pm2-no-cwd"),
    pytest.param("firewall", check_firewall, UFW, "ufw deny 3001/tcp", "ufw deny 3001/tcpx",
                 "ufw rejects `ufw deny 3001/tcpx", id="ufw-bad-port"),
    pytest.param("firewall", check_firewall, UFW, "ufw default deny incoming",
                 "ufw default maybe incoming", "ufw rejects", id="ufw-bad-default"),
    pytest.param("logrotate", check_logrotate, LOGROTATE, "    daily\n", "    dailyy\n",
                 "logrotate rejects", id="logrotate-unknown-option"),
    pytest.param("logrotate", check_logrotate, LOGROTATE, "    rotate 14\n", "    rotate x\n",
                 "logrotate rejects", id="logrotate-bad-count"),
]


@pytest.mark.tools
@pytest.mark.timeout(120)
@pytest.mark.parametrize(("kind", "check", "tool", "old", "new", "says"), CHECK_CASES)
def test_checks_pass_real_output_and_fail_corrupted(
    kind: str, check: Callable[..., Any], tool: str | None, old: str, new: str, says: str
) -> None:
    if tool is None:
        pytest.skip(f"the {kind} tool is not installed")
    for variant in (VARIANTS[0], next(v for v in VARIANTS if v.id == "sandbox")):
        target = variant.target()
        [file] = render_target(target, [kind], SecretValues(), "x")
        good = check(file, target)
        assert good.ok, good.output
        assert "\n" not in good.summary
        bad = check(_corrupt(file, old, new), target)
        assert not bad.ok, bad.output
        assert "\n" not in bad.summary
        assert says in bad.summary, bad.summary


def test_check_env_needs_every_required_value() -> None:
    target = VARIANTS[0].target()
    names = target.env.secrets.names
    full = SecretValues(values={n: f"value-{n.lower()}" for n in names})
    assert check_env(render_env(target, full, "x"), target).ok
    partial = SecretValues(values={n: "v" for n in names[1:]}, missing=[names[0]])
    result = check_env(render_env(target, partial, "x"), target)
    assert not result.ok
    assert names[0] in result.summary and "\n" not in result.summary


def test_written_env_mode_is_private(tmp_path: Path) -> None:
    """The file mode the renderer asks for is what _write gives (umask notwithstanding)."""
    from adapto_ops.procedures.render import _write

    target = VARIANTS[0].target()
    file = render_env(target, SecretValues(values=SECRETS), "x")
    old = os.umask(0)
    try:
        _write(tmp_path / "env" / "backend.env", file)
    finally:
        os.umask(old)
    assert stat.S_IMODE((tmp_path / "env" / "backend.env").stat().st_mode) == 0o600


def test_bare_ipv6_addresses_render_in_brackets(tmp_path: Path) -> None:
    """listen, upstream servers and the OCSP resolver: a bare IPv6 address gets brackets."""
    target = Variant(
        "bare-ipv6", "production",
        _both(_nginx(listen=["0.0.0.0", "::"]),
              lambda d: d["hosts"][0].update(private_address="::1"),
              _stapling("::1", "127.0.0.53")),
    ).target()
    assert target.env.nginx.listen == ["0.0.0.0", "[::]"]
    assert target.env.hosts[0].private_address == "[::1]"
    assert target.env.nginx.tls.ocsp_resolver == ["[::1]", "127.0.0.53"]
    tree = parse_site(render_nginx(target).text, tmp_path)
    servers = [d["args"][0] for d in find(one(tree, "upstream")["block"], "server")]
    assert servers == ["[::1]:3001", "[::1]:3002"]
    for server in find(tree, "server"):
        addresses = [d["args"][0].rsplit(":", 1)[0] for d in find(server["block"], "listen")]
        assert addresses == ["0.0.0.0", "[::]"]
    resolvers = [d["args"] for s in find(tree, "server") for d in walk(s["block"])
                 if d["directive"] == "resolver"]
    assert resolvers and all(r[:2] == ["[::1]", "127.0.0.53"] for r in resolvers), resolvers


# --- whatever the model accepts, nginx must accept ------------------------------------------------


def _nginx(**values: Any) -> Callable[[dict[str, Any]], None]:
    return _set("nginx", **values)


def _api_limit(**values: Any) -> Callable[[dict[str, Any]], None]:
    def mutate(data: dict[str, Any]) -> None:
        data["nginx"]["rate_limits"]["api"].update(values)

    return mutate


def _bug(reason: str) -> pytest.MarkDecorator:
    return pytest.mark.xfail(strict=True, raises=AssertionError, reason=f"product bug: {reason}")


def _stapling(*resolver: str) -> Callable[[dict[str, Any]], None]:
    return _tls("provided", **PROVIDED, trusted_certificate="/etc/ssl/certs/chain.pem",
                ocsp_resolver=list(resolver))


# Values nginx would reject, which validation now refuses.
REFUSED = [
    pytest.param(_api_limit(burst=0), id="burst-0"),
    pytest.param(_api_limit(rate="0r/s"), id="rate-0"),
    pytest.param(_nginx(websocket_path="/"), id="websocket-path-root"),
    pytest.param(_nginx(websocket_path="/index.html"), id="websocket-path-index"),
    pytest.param(_nginx(websocket_path="/api/"), id="websocket-path-api"),
    pytest.param(_nginx(websocket_path="/api/chat"), id="websocket-path-under-api"),
    pytest.param(_set("frontend", assets_dir="api"), id="assets-dir-api"),
    pytest.param(_set("paths", root="/srv/my app"), id="root-with-space"),
    pytest.param(_set("paths", root="/srv/app{x}"), id="root-with-brace"),
    pytest.param(_set("paths", root="/srv/$app"), id="root-with-dollar"),
    pytest.param(lambda d: d["nginx"]["tls"].update(acme_webroot="/var/www/le root"),
                 id="acme-webroot-with-space"),
    pytest.param(_nginx(access_log="/var/log/nginx/a b.log"), id="access-log-with-space"),
    pytest.param(_nginx(access_log="/var/log/nginx/a\tb.log"), id="access-log-with-tab"),
    pytest.param(_nginx(listen=["not an address"]), id="listen-free-text"),
    pytest.param(_nginx(listen=["::g"]), id="listen-not-an-ipv6"),
    pytest.param(_nginx(listen=["1.2.3"]), id="listen-short-ipv4"),
    pytest.param(_nginx(listen=["999.1.1.1"]), id="listen-not-an-ipv4"),
    pytest.param(_nginx(listen=["0.0.0.0", "0.0.0.0"]), id="listen-twice"),
    pytest.param(_nginx(listen=["*", "0.0.0.0"]), id="listen-star-and-any"),
    pytest.param(_nginx(listen=["[::]", "::"]), id="listen-ipv6-twice-once-bare"),
    pytest.param(lambda d: d["hosts"][0].update(private_address="::g"),
                 id="private-address-not-an-ipv6"),
    pytest.param(lambda d: d["hosts"][0].update(private_address="1.2.3"),
                 id="private-address-short-ipv4"),
    pytest.param(_tls("letsencrypt", ocsp_stapling=True), id="stapling-without-resolver"),
    pytest.param(_stapling(":"), id="stapling-resolver-colon"),
    pytest.param(_stapling("1.2.3"), id="stapling-resolver-short-ipv4"),
    pytest.param(_stapling("dns.example"), id="stapling-resolver-host-name"),
    pytest.param(_nginx(websocket_path="/assets/"), id="websocket-path-assets"),
    pytest.param(_nginx(websocket_path="/assets/ws"), id="websocket-path-inside-assets"),
]


@pytest.mark.parametrize("mutate", REFUSED)
def test_model_refuses_what_nginx_would_reject(
    mutate: Callable[[dict[str, Any]], None],
) -> None:
    from pydantic import ValidationError

    Variant("unchanged", "production").environment()  # the base itself is valid
    with pytest.raises(ValidationError):
        Variant("edge", "production", mutate).environment()


EDGE_CASES = [
    pytest.param(_nginx(client_max_body_size="0"), id="body-size-0"),
    pytest.param(_nginx(server_names=["*.adaptoai.ru"]), id="wildcard-name"),
    pytest.param(_nginx(listen=["*"]), id="listen-star"),
    pytest.param(_nginx(listen=["[::1]"]), id="listen-ipv6"),
    pytest.param(_nginx(upstream_keepalive=1024, http2=False), id="keepalive-max-no-http2"),
    pytest.param(_nginx(default_server=False), id="not-default-server"),
    pytest.param(_set("paths", root="/srv/app#1"), id="root-with-hash"),
    pytest.param(_api_limit(rate="1r/m", burst=100000), id="slowest-rate-biggest-burst"),
    pytest.param(lambda d: d["hosts"][0].update(private_address="[::1]"),
                 id="private-address-ipv6-bracketed"),
    pytest.param(_stapling("127.0.0.53", "[::1]"), id="stapling-resolvers"),
    # Accepted, and written as nginx wants it: a bare IPv6 address gets its brackets.
    pytest.param(_nginx(listen=["::"]), id="listen-bare-ipv6"),
    pytest.param(_nginx(listen=["0.0.0.0", "::"]), id="listen-ipv4-and-bare-ipv6"),
    pytest.param(_nginx(listen=["localhost"]), id="listen-host-name"),
    pytest.param(lambda d: d["hosts"][0].update(private_address="::1"),
                 id="private-address-bare-ipv6"),
    pytest.param(lambda d: d["hosts"][0].update(private_address="localhost"),
                 id="private-address-host-name"),
    pytest.param(_stapling("::1"), id="stapling-resolver-bare-ipv6"),
    pytest.param(_nginx(websocket_path="/assetsws"), id="websocket-path-beside-assets"),
    # Refused by validation since the fixes (the test returns at ValidationError).
    *REFUSED,
    # Refused by validation: an address nginx cannot listen on or connect to.
    pytest.param(
        lambda d: d["hosts"][0].update(private_address="*"), id="private-address-star",
    ),
    pytest.param(
        _nginx(listen=["*.example.com"]), id="listen-wildcard-name",
    ),
    pytest.param(
        lambda d: d["hosts"][0].update(private_address="*.example.com"),
        id="private-address-wildcard-name",
    ),
    pytest.param(
        _nginx(listen=["fe80::1%lo"]), id="listen-ipv6-scope-id",
    ),
    pytest.param(
        _stapling("fe80::1%lo"), id="stapling-resolver-ipv6-scope-id",
    ),
]


@pytest.mark.tools
@needs_nginx
@pytest.mark.timeout(120)
@pytest.mark.parametrize("mutate", EDGE_CASES)
def test_valid_inventory_never_renders_a_config_nginx_rejects(
    mutate: Callable[[dict[str, Any]], None],
) -> None:
    """Either validation refuses the value, or nginx -t accepts what it renders."""
    from pydantic import ValidationError

    try:
        target = Variant("edge", "production", mutate).target()
    except ValidationError:
        return
    result = check_nginx(render_nginx(target), target)
    assert result.ok, result.summary
